// The console loads eventsource-parser's own ESM build (no bundler): the
// service serves node_modules/eventsource-parser/dist/index.js at
// /ui/assets/vendor/eventsource-parser.js (src/http/routes/console.ts), and
// these are its types, from the package.
export { createParser, type EventSourceMessage, type EventSourceParser, type ParserCallbacks } from 'eventsource-parser';
