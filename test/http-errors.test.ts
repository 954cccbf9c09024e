// Every 4xx in the API's shape, including those raised before a route runs —
// by Node's HTTP parser (431, 400), Fastify's router (414, bad %-escapes) and
// body parsing (413, bad JSON, wrong content type) — over a real socket, the
// way a client meets them; and the service keeps answering after each.
import net from 'node:net';
import t from 'tap';
import { startService } from './helpers/harness.js';

const service = await startService('http://127.0.0.1:9', { EC2_API_PAUSED: '1' });
t.teardown(() => service.close());
await service.app.listen({ port: 0, host: '127.0.0.1' });
const { port } = service.app.server.address() as net.AddressInfo;

/** Sends raw bytes, reads the whole answer: status code and parsed JSON body. */
function raw(request: string): Promise<{ status: number; type: string; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
    let text = '';
    socket.on('data', (chunk) => (text += chunk.toString()));
    socket.on('error', reject);
    socket.on('close', () => {
      const [head = '', ...rest] = text.split('\r\n\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
      const type = /content-type: ([^\r\n]+)/i.exec(head)?.[1] ?? '';
      // Chunked answers: drop the chunk-size lines.
      const payload = rest.join('\r\n\r\n').replace(/^[0-9a-f]+\r\n|\r\n0\r\n$/gim, '').trim();
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(payload) as Record<string, unknown>;
      } catch {
        body = { unparsed: payload };
      }
      resolve({ status, type, body });
    });
  });
}

const get = (path: string, headers = '') => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}Connection: close\r\n\r\n`;
const post = (type: string, body: string, length = Buffer.byteLength(body)) =>
  `POST /create-async HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${type}\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n${body}`;

const cases: [what: string, request: string, status: number, says: RegExp][] = [
  ['a 9,000-character /delete/<ip>', get(`/delete/${'1'.repeat(9_000)}`), 414, /too long/],
  ['a 100 kB URL', get(`/delete/${'1'.repeat(100_000)}`), 431, /too large.*shorten the URL/],
  ['a 100 kB header', get('/healthz', `X-Big: ${'a'.repeat(100_000)}\r\n`), 431, /too large/],
  ['a malformed %-escape', get('/status/%E0%A4%A'), 400, /URL is not valid/],
  ['a request line that is not HTTP', 'GARBAGE\r\n\r\n', 400, /not valid HTTP/],
  ['a 20 kB body', post('application/json', `{"username":"a","password":"${'x'.repeat(20_000)}"}`), 413, /too large.*16 KiB/],
  ['a body that is not JSON', post('application/json', '{"username":'), 400, /not valid JSON/],
  ['a form body', post('application/x-www-form-urlencoded', 'username=a&password=b'), 415, /Content-Type: application\/json/],
  ['an unknown route', get('/nowhere'), 404, /no route GET \/nowhere/],
];

for (const [what, request, status, says] of cases) {
  t.test(what, async (t) => {
    const answer = await raw(request);
    t.equal(answer.status, status);
    t.match(answer.type, /^application\/json/, 'JSON');
    t.match(answer.body, { error: says }, `a sentence that says what to do: ${String(answer.body.error)}`);
    t.notMatch(String(answer.body.error), /^(Bad Request|Request Header Fields Too Large|URI Too Long|Payload Too Large)$/, 'not just the status text');
    t.same(Object.keys(answer.body).filter((key) => key !== 'error' && key !== 'field'), [], 'only error (and field)');
    t.equal((await raw(get('/healthz'))).status, 200, 'the service still answers');
  });
}
