// SHA-512-crypt's digest (Drepper, "Unix crypt using SHA-256 and SHA-512",
// steps 1–21) in AssemblyScript, compiled to WebAssembly by
// src/login/kernel/build.mjs (`npm run build`). The `.as` extension keeps the
// service's tsc away from it: this is AssemblyScript, not TypeScript (i64, u8,
// load/store are WebAssembly types and instructions).
//
// One call per hash: the host writes the password P and the salt S at
// `input(P.length)`, calls `crypt(P.length, S.length, rounds)` and reads the
// 64-byte digest at the pointer it returns. Before returning, `crypt` zeroes
// every byte it derived from the password (P itself, its derived byte
// sequence, the intermediate digests, SHA-512 state, block and schedule): all
// that stays in memory is the final digest, which the hash string shows anyway.
//
// The readable reference is src/login/reference.ts; test/password.test.ts
// checks that both agree with each other, with openssl and with the spec.

// SHA-512 round constants (FIPS 180-4, 4.2.3).
const K: usize = memory.data<u64>([
  0x428a2f98d728ae22, 0x7137449123ef65cd, 0xb5c0fbcfec4d3b2f, 0xe9b5dba58189dbbc,
  0x3956c25bf348b538, 0x59f111f1b605d019, 0x923f82a4af194f9b, 0xab1c5ed5da6d8118,
  0xd807aa98a3030242, 0x12835b0145706fbe, 0x243185be4ee4b28c, 0x550c7dc3d5ffb4e2,
  0x72be5d74f27b896f, 0x80deb1fe3b1696b1, 0x9bdc06a725c71235, 0xc19bf174cf692694,
  0xe49b69c19ef14ad2, 0xefbe4786384f25e3, 0x0fc19dc68b8cd5b5, 0x240ca1cc77ac9c65,
  0x2de92c6f592b0275, 0x4a7484aa6ea6e483, 0x5cb0a9dcbd41fbd4, 0x76f988da831153b5,
  0x983e5152ee66dfab, 0xa831c66d2db43210, 0xb00327c898fb213f, 0xbf597fc7beef0ee4,
  0xc6e00bf33da88fc2, 0xd5a79147930aa725, 0x06ca6351e003826f, 0x142929670a0e6e70,
  0x27b70a8546d22ffc, 0x2e1b21385c26c926, 0x4d2c6dfc5ac42aed, 0x53380d139d95b3df,
  0x650a73548baf63de, 0x766a0abb3c77b2a8, 0x81c2c92e47edaee6, 0x92722c851482353b,
  0xa2bfe8a14cf10364, 0xa81a664bbc423001, 0xc24b8b70d0f89791, 0xc76c51a30654be30,
  0xd192e819d6ef5218, 0xd69906245565a910, 0xf40e35855771202a, 0x106aa07032bbd1b8,
  0x19a4c116b8d2d0c8, 0x1e376c085141ab53, 0x2748774cdf8eeb99, 0x34b0bcb5e19b48a8,
  0x391c0cb3c5c95a63, 0x4ed8aa4ae3418acb, 0x5b9cca4f7763e373, 0x682e6ff3d6b2b8a3,
  0x748f82ee5defb2fc, 0x78a5636f43172f60, 0x84c87814a1f0ab72, 0x8cc702081a6439ec,
  0x90befffa23631e28, 0xa4506cebde82bde9, 0xbef9a3f7b2c67915, 0xc67178f2e372532b,
  0xca273eceea26619c, 0xd186b8c721c0c207, 0xeada7dd6cde0eb1e, 0xf57d4f7fee6ed178,
  0x06f067aa72176fba, 0x0a637dc5a2c898a6, 0x113f9804bef90dae, 0x1b710b35131c471b,
  0x28db77f523047d84, 0x32caab7b40c72493, 0x3c9ebe0a15c9bebc, 0x431d67c49c100d4c,
  0x4cc5d4becb3e42b6, 0x597f299cfc657e2a, 0x5fcb6fab3ad6faec, 0x6c44198c4a475817,
]);

// Scratch, all static. Everything here but OUT is wiped at the end of crypt().
const STATE: usize = memory.data(64); // SHA-512 chaining value H0..H7
const BLOCK: usize = memory.data(128); // the block being filled (bytes)
const W: usize = memory.data(128); // a block of bytes as big-endian words
const A: usize = memory.data(64); // digest A (alternate sum, then each round's C)
const B: usize = memory.data(64); // digest B (alternate sum)
const DS: usize = memory.data(64); // digest DS (of the salt; not secret, wiped anyway)
const LAYOUT: usize = memory.data(8 * 24); // per round layout: see crypt()
const OUT: usize = memory.data(64); // the result
let filled: i32 = 0; // bytes in BLOCK
let total: u64 = 0; // bytes hashed so far

function init(): void {
  store<u64>(STATE, 0x6a09e667f3bcc908, 0);
  store<u64>(STATE, 0xbb67ae8584caa73b, 8);
  store<u64>(STATE, 0x3c6ef372fe94f82b, 16);
  store<u64>(STATE, 0xa54ff53a5f1d36f1, 24);
  store<u64>(STATE, 0x510e527fade682d1, 32);
  store<u64>(STATE, 0x9b05688c2b3e6c1f, 40);
  store<u64>(STATE, 0x1f83d9abfb41bd6b, 48);
  store<u64>(STATE, 0x5be0cd19137e2179, 56);
  filled = 0;
  total = 0;
}

// SHA-512's functions (FIPS 180-4, 4.1.3).
// @ts-ignore: decorator
@inline function Ch(x: u64, y: u64, z: u64): u64 { return z ^ (x & (y ^ z)); }
// @ts-ignore: decorator
@inline function Maj(x: u64, y: u64, z: u64): u64 { return (x & y) | (z & (x | y)); }
// @ts-ignore: decorator
@inline function Σ0(x: u64): u64 { return rotr<u64>(x, 28) ^ rotr<u64>(x, 34) ^ rotr<u64>(x, 39); }
// @ts-ignore: decorator
@inline function Σ1(x: u64): u64 { return rotr<u64>(x, 14) ^ rotr<u64>(x, 18) ^ rotr<u64>(x, 41); }
// @ts-ignore: decorator
@inline function σ0(x: u64): u64 { return rotr<u64>(x, 1) ^ rotr<u64>(x, 8) ^ (x >> 7); }
// @ts-ignore: decorator
@inline function σ1(x: u64): u64 { return rotr<u64>(x, 19) ^ rotr<u64>(x, 61) ^ (x >> 6); }

/**
 * One SHA-512 compression (FIPS 180-4, 6.4.2) into STATE of the 16 words at
 * `M`. Sixteen rounds per pass, five passes: the message schedule lives in
 * sixteen locals (w0..w15, Wt for t ≥ 16 computed in place from t − 16, − 15,
 * − 7, − 2), and each round's variables are named in rotation instead of
 * moved (round t: T1 = h + Σ1(e) + Ch(e, f, g) + Kt + Wt; d += T1;
 * h = T1 + Σ0(a) + Maj(a, b, c); the next round's a is this h). About 10%
 * faster than a rolled loop with the schedule in memory (bench, V8 11.3).
 */
function compress(M: usize): void {
  let w0 = load<u64>(M, 0);
  let w1 = load<u64>(M, 8);
  let w2 = load<u64>(M, 16);
  let w3 = load<u64>(M, 24);
  let w4 = load<u64>(M, 32);
  let w5 = load<u64>(M, 40);
  let w6 = load<u64>(M, 48);
  let w7 = load<u64>(M, 56);
  let w8 = load<u64>(M, 64);
  let w9 = load<u64>(M, 72);
  let w10 = load<u64>(M, 80);
  let w11 = load<u64>(M, 88);
  let w12 = load<u64>(M, 96);
  let w13 = load<u64>(M, 104);
  let w14 = load<u64>(M, 112);
  let w15 = load<u64>(M, 120);
  let a = load<u64>(STATE, 0);
  let b = load<u64>(STATE, 8);
  let c = load<u64>(STATE, 16);
  let d = load<u64>(STATE, 24);
  let e = load<u64>(STATE, 32);
  let f = load<u64>(STATE, 40);
  let g = load<u64>(STATE, 48);
  let h = load<u64>(STATE, 56);
  let t: u64;
  for (let k = K; k < K + 640; k += 128) { // k: the Kt of this pass's rounds
    const scheduled = k != K; // rounds 16..79
    if (scheduled) w0 += σ0(w1) + w9 + σ1(w14);
    t = h + Σ1(e) + Ch(e, f, g) + load<u64>(k, 0) + w0; d += t; h = t + Σ0(a) + Maj(a, b, c);
    if (scheduled) w1 += σ0(w2) + w10 + σ1(w15);
    t = g + Σ1(d) + Ch(d, e, f) + load<u64>(k, 8) + w1; c += t; g = t + Σ0(h) + Maj(h, a, b);
    if (scheduled) w2 += σ0(w3) + w11 + σ1(w0);
    t = f + Σ1(c) + Ch(c, d, e) + load<u64>(k, 16) + w2; b += t; f = t + Σ0(g) + Maj(g, h, a);
    if (scheduled) w3 += σ0(w4) + w12 + σ1(w1);
    t = e + Σ1(b) + Ch(b, c, d) + load<u64>(k, 24) + w3; a += t; e = t + Σ0(f) + Maj(f, g, h);
    if (scheduled) w4 += σ0(w5) + w13 + σ1(w2);
    t = d + Σ1(a) + Ch(a, b, c) + load<u64>(k, 32) + w4; h += t; d = t + Σ0(e) + Maj(e, f, g);
    if (scheduled) w5 += σ0(w6) + w14 + σ1(w3);
    t = c + Σ1(h) + Ch(h, a, b) + load<u64>(k, 40) + w5; g += t; c = t + Σ0(d) + Maj(d, e, f);
    if (scheduled) w6 += σ0(w7) + w15 + σ1(w4);
    t = b + Σ1(g) + Ch(g, h, a) + load<u64>(k, 48) + w6; f += t; b = t + Σ0(c) + Maj(c, d, e);
    if (scheduled) w7 += σ0(w8) + w0 + σ1(w5);
    t = a + Σ1(f) + Ch(f, g, h) + load<u64>(k, 56) + w7; e += t; a = t + Σ0(b) + Maj(b, c, d);
    if (scheduled) w8 += σ0(w9) + w1 + σ1(w6);
    t = h + Σ1(e) + Ch(e, f, g) + load<u64>(k, 64) + w8; d += t; h = t + Σ0(a) + Maj(a, b, c);
    if (scheduled) w9 += σ0(w10) + w2 + σ1(w7);
    t = g + Σ1(d) + Ch(d, e, f) + load<u64>(k, 72) + w9; c += t; g = t + Σ0(h) + Maj(h, a, b);
    if (scheduled) w10 += σ0(w11) + w3 + σ1(w8);
    t = f + Σ1(c) + Ch(c, d, e) + load<u64>(k, 80) + w10; b += t; f = t + Σ0(g) + Maj(g, h, a);
    if (scheduled) w11 += σ0(w12) + w4 + σ1(w9);
    t = e + Σ1(b) + Ch(b, c, d) + load<u64>(k, 88) + w11; a += t; e = t + Σ0(f) + Maj(f, g, h);
    if (scheduled) w12 += σ0(w13) + w5 + σ1(w10);
    t = d + Σ1(a) + Ch(a, b, c) + load<u64>(k, 96) + w12; h += t; d = t + Σ0(e) + Maj(e, f, g);
    if (scheduled) w13 += σ0(w14) + w6 + σ1(w11);
    t = c + Σ1(h) + Ch(h, a, b) + load<u64>(k, 104) + w13; g += t; c = t + Σ0(d) + Maj(d, e, f);
    if (scheduled) w14 += σ0(w15) + w7 + σ1(w12);
    t = b + Σ1(g) + Ch(g, h, a) + load<u64>(k, 112) + w14; f += t; b = t + Σ0(c) + Maj(c, d, e);
    if (scheduled) w15 += σ0(w0) + w8 + σ1(w13);
    t = a + Σ1(f) + Ch(f, g, h) + load<u64>(k, 120) + w15; e += t; a = t + Σ0(b) + Maj(b, c, d);
  }
  store<u64>(STATE, load<u64>(STATE, 0) + a, 0);
  store<u64>(STATE, load<u64>(STATE, 8) + b, 8);
  store<u64>(STATE, load<u64>(STATE, 16) + c, 16);
  store<u64>(STATE, load<u64>(STATE, 24) + d, 24);
  store<u64>(STATE, load<u64>(STATE, 32) + e, 32);
  store<u64>(STATE, load<u64>(STATE, 40) + f, 40);
  store<u64>(STATE, load<u64>(STATE, 48) + g, 48);
  store<u64>(STATE, load<u64>(STATE, 56) + h, 56);
}

/** Compresses the 128 bytes at `ptr` (big-endian words). */
function compressBytes(ptr: usize): void {
  for (let i: usize = 0; i < 128; i += 8) store<u64>(W + i, bswap<u64>(load<u64>(ptr + i)));
  compress(W);
}

// Streaming SHA-512 over bytes, for steps 1–20 (a few dozen blocks per hash).
function update(ptr: usize, len: i32): void {
  total += <u64>len;
  while (len > 0) {
    let n = 128 - filled;
    if (n > len) n = len;
    memory.copy(BLOCK + <usize>filled, ptr, <usize>n);
    filled += n;
    ptr += <usize>n;
    len -= n;
    if (filled == 128) {
      compressBytes(BLOCK);
      filled = 0;
    }
  }
}

/** Pads, compresses and writes the digest (big-endian bytes) to `out`. */
function final(out: usize): void {
  store<u8>(BLOCK + <usize>filled, 0x80);
  filled++;
  if (filled > 112) {
    memory.fill(BLOCK + <usize>filled, 0, <usize>(128 - filled));
    compressBytes(BLOCK);
    filled = 0;
  }
  memory.fill(BLOCK + <usize>filled, 0, <usize>(120 - filled));
  store<u64>(BLOCK, bswap<u64>(total << 3), 120); // bit length; < 2^64 here
  compressBytes(BLOCK);
  for (let i: usize = 0; i < 64; i += 8) store<u64>(out + i, bswap<u64>(load<u64>(STATE + i)));
}

/** `len` bytes of `src` repeated (then cut) to `count` bytes at `dst`. */
function stretch(dst: usize, src: usize, len: i32, count: i32): void {
  for (let at = 0; at < count; at += len) memory.copy(dst + <usize>at, src, <usize>(count - at < len ? count - at : len));
}

// Heap layout for a password of length p and a salt of length s ≤ 16:
// P (p bytes), S (s), the P sequence (p), the S sequence (s), then the eight
// round layouts (below), each `layoutSize(p)` bytes, 16-byte aligned.
function heapStart(): usize {
  return (__heap_base + 15) & ~15;
}
function layoutsStart(pLen: i32): usize {
  return (heapStart() + 2 * <usize>pLen + 32 + 15) & ~15;
}
/** Bytes of one round layout: the longest round message (A, P seq twice, S seq), padded to whole blocks. */
function layoutSize(pLen: i32): usize {
  return ((64 + 2 * <usize>pLen + 16 + 17 + 127) >> 7) << 7;
}

/**
 * Where the host writes P (`passwordLength` bytes) followed by S (up to 16
 * bytes); grows memory to fit them and what crypt() derives from them.
 */
export function input(passwordLength: i32): usize {
  const end = layoutsStart(passwordLength) + 8 * layoutSize(passwordLength);
  const pages = <i32>((end + 0xffff) >> 16);
  if (pages > memory.size() && memory.grow(pages - memory.size()) < 0) unreachable();
  return heapStart();
}

/** SHA-512-crypt's final digest for P and S (at `input()`); returns where it is (64 bytes). */
export function crypt(pLen: i32, sLen: i32, rounds: i32): usize {
  const P = heapStart();
  const S = P + <usize>pLen;
  const Pseq = S + <usize>sLen; // step 16
  const Sseq = Pseq + <usize>pLen; // step 20

  // Steps 4–8: digest B = SHA-512(P S P).
  init();
  update(P, pLen);
  update(S, sLen);
  update(P, pLen);
  final(B);

  // Steps 1–3, 9–12: digest A.
  init();
  update(P, pLen);
  update(S, sLen);
  for (let n = pLen; n > 0; n -= 64) update(B, n > 64 ? 64 : n);
  for (let n = pLen; n > 0; n >>= 1) {
    if (n & 1) update(B, 64);
    else update(P, pLen);
  }
  final(A);

  // Steps 13–16: DP = SHA-512(P repeated |P| times); the P sequence is DP cut or repeated to |P|.
  init();
  for (let i = 0; i < pLen; i++) update(P, pLen);
  final(DS); // DS is free until step 17: borrow it
  stretch(Pseq, DS, 64, pLen);

  // Steps 17–20: DS = SHA-512(S repeated 16 + A[0] times); the S sequence likewise.
  init();
  const times = 16 + <i32>load<u8>(A);
  for (let i = 0; i < times; i++) update(S, sLen);
  final(DS);
  stretch(Sseq, DS, 64, sLen);

  // Step 21, the rounds. Round i hashes
  //   (i odd ? P seq : A) + (i % 3 ? S seq : "") + (i % 7 ? P seq : "") + (i odd ? A : P seq),
  // so there are eight layouts (odd, i % 3 > 0, i % 7 > 0), fixed but for the
  // 64 bytes of A. Each is built once as padded SHA-512 blocks in big-endian
  // words; a round only writes A into its layout (as words, shifted when A
  // starts mid-word) and compresses, without any byte copying or swapping.
  const layouts = layoutsStart(pLen);
  const size = layoutSize(pLen);
  for (let k: usize = 0; k < 8; k++) {
    const L = layouts + k * size;
    const odd = (k & 1) != 0;
    memory.fill(L, 0, size);
    let at = L;
    if (odd) {
      memory.copy(at, Pseq, <usize>pLen);
      at += <usize>pLen;
    } else at += 64; // A goes here
    if (k & 2) {
      memory.copy(at, Sseq, <usize>sLen);
      at += <usize>sLen;
    }
    if (k & 4) {
      memory.copy(at, Pseq, <usize>pLen);
      at += <usize>pLen;
    }
    if (odd) at += 64; // A goes here
    else {
      memory.copy(at, Pseq, <usize>pLen);
      at += <usize>pLen;
    }
    const length = at - L;
    const blocks = (length + 17 + 127) >> 7;
    store<u8>(at, 0x80);
    store<u64>(L + (blocks << 7) - 8, bswap<u64>(<u64>length << 3));
    for (let i: usize = 0; i < blocks << 7; i += 8) store<u64>(L + i, bswap<u64>(load<u64>(L + i)));
    // LAYOUT[k]: A's byte offset, the number of blocks, and the two words A
    // shares with its neighbours when it does not start on a word (A's bytes
    // are zero in them).
    const offset = odd ? length - 64 : 0;
    const entry = LAYOUT + k * 24;
    store<u32>(entry, <u32>offset, 0);
    store<u32>(entry, <u32>blocks, 4);
    store<u64>(entry, load<u64>(L + (offset & ~7)), 8);
    store<u64>(entry, load<u64>(L + (offset & ~7) + 64), 16);
  }

  // A, as words from here on.
  let a0 = bswap<u64>(load<u64>(A, 0)), a1 = bswap<u64>(load<u64>(A, 8));
  let a2 = bswap<u64>(load<u64>(A, 16)), a3 = bswap<u64>(load<u64>(A, 24));
  let a4 = bswap<u64>(load<u64>(A, 32)), a5 = bswap<u64>(load<u64>(A, 40));
  let a6 = bswap<u64>(load<u64>(A, 48)), a7 = bswap<u64>(load<u64>(A, 56));

  let mod3 = 0;
  let mod7 = 0;
  for (let i = 0; i < rounds; i++) {
    const k = <usize>((i & 1) | (mod3 != 0 ? 2 : 0) | (mod7 != 0 ? 4 : 0));
    if (++mod3 == 3) mod3 = 0;
    if (++mod7 == 7) mod7 = 0;
    const entry = LAYOUT + k * 24;
    const offset = <usize>load<u32>(entry, 0);
    const blocks = <usize>load<u32>(entry, 4);
    const L = layouts + k * size;
    const at = L + (offset & ~7);
    const r = <u64>((offset & 7) << 3); // A starts r bits into word `at`
    if (r == 0) {
      store<u64>(at, a0, 0); store<u64>(at, a1, 8); store<u64>(at, a2, 16); store<u64>(at, a3, 24);
      store<u64>(at, a4, 32); store<u64>(at, a5, 40); store<u64>(at, a6, 48); store<u64>(at, a7, 56);
    } else {
      const l = 64 - r;
      store<u64>(at, load<u64>(entry, 8) | (a0 >> r), 0);
      store<u64>(at, (a0 << l) | (a1 >> r), 8);
      store<u64>(at, (a1 << l) | (a2 >> r), 16);
      store<u64>(at, (a2 << l) | (a3 >> r), 24);
      store<u64>(at, (a3 << l) | (a4 >> r), 32);
      store<u64>(at, (a4 << l) | (a5 >> r), 40);
      store<u64>(at, (a5 << l) | (a6 >> r), 48);
      store<u64>(at, (a6 << l) | (a7 >> r), 56);
      store<u64>(at, (a7 << l) | load<u64>(entry, 16), 64);
    }
    init();
    for (let b: usize = 0; b < blocks; b++) compress(L + (b << 7));
    a0 = load<u64>(STATE, 0); a1 = load<u64>(STATE, 8); a2 = load<u64>(STATE, 16); a3 = load<u64>(STATE, 24);
    a4 = load<u64>(STATE, 32); a5 = load<u64>(STATE, 40); a6 = load<u64>(STATE, 48); a7 = load<u64>(STATE, 56);
  }

  store<u64>(OUT, bswap<u64>(a0), 0); store<u64>(OUT, bswap<u64>(a1), 8);
  store<u64>(OUT, bswap<u64>(a2), 16); store<u64>(OUT, bswap<u64>(a3), 24);
  store<u64>(OUT, bswap<u64>(a4), 32); store<u64>(OUT, bswap<u64>(a5), 40);
  store<u64>(OUT, bswap<u64>(a6), 48); store<u64>(OUT, bswap<u64>(a7), 56);

  // Nothing derived from the password stays behind.
  memory.fill(STATE, 0, 64);
  memory.fill(BLOCK, 0, 128);
  memory.fill(W, 0, 128);
  memory.fill(A, 0, 64);
  memory.fill(B, 0, 64);
  memory.fill(DS, 0, 64);
  memory.fill(LAYOUT, 0, 8 * 24);
  memory.fill(P, 0, layouts + 8 * size - P);
  filled = 0;
  total = 0;
  return OUT;
}
