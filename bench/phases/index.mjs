// The bench's phases, in the order they run: each file is one phase, with its
// name for --only, the key of its results in latest.json, whether it uses the
// shared idle moto, how to run it, and the rows it adds to the table.
import accept from './accept.mjs';
import acceptDistinct from './accept-distinct.mjs';
import drain from './drain.mjs';
import memory from './memory.mjs';
import nodes from './nodes.mjs';
import pacing from './pacing.mjs';
import status from './status.mjs';
import statusLoad from './status-load.mjs';
import sync from './sync.mjs';

export const PHASES = [accept, acceptDistinct, status, statusLoad, memory, drain, sync, pacing, nodes];
