// APB attention for Hopper (sm_90a) in FlashAttention-3's structure, for head dims 128 and
// 64. A block owns 64 query rows per consumer warpgroup of one head and runs:
//   - a producer warpgroup: one thread issues TMA copies of Q, then K and V tiles (128 keys)
//     into a two-stage ring in shared memory, each stage guarded by a "full" and an "empty"
//     mbarrier;
//   - consumer warpgroups, 64 rows each: S = Q K^T and O += P V on wgmma, online softmax
//     between. Head dim 128 runs two (128 rows); head dim 64 runs three (192 rows): its
//     matrix products take half as long while the softmax of a 64 x 128 tile costs the same,
//     so two other warpgroups' products are needed to cover one warpgroup's softmax.
// Two overlaps hide the softmax: inside a consumer, S of tile i is issued together with
// P V of tile i-1, so the exponentials of tile i run while P V computes; across consumers,
// named barriers pass a turn round ("ping-pong"), so one warpgroup's matrix products run
// while the others do their softmax.
// Keys come as segments read in place (common.cuh); a block walks only the tiles its last
// row can see (with splits > 1, its share of them), and masks only tiles that cross a causal
// diagonal or a segment's end.
// Tiles sit in shared memory in the 128-byte-swizzled layout TMA writes and wgmma reads:
// a [rows][D bf16] tile is D / 64 column boxes of [rows][64 bf16], the 16-byte chunks of
// row r permuted by r % 8.
//
// Launched only by crates/apb-cuda/src/attention_sm90.rs, which encodes the tensor maps
// (cuTensorMapEncodeTiled: 2-D bf16, 128-byte swizzle, box 64 columns x 64 rows for q over
// [rows][q_heads * D], 64 columns x 128 rows for k[i] and v[i] over segment i's own rows
// [count][kv_heads * D], based at its first row, so reads past a segment's end come back as
// zeros), checks shapes and launches: grid (ceil(rows / (64 * consumers)), q_heads, splits), 128
// threads per warpgroup, smem_bytes<D>() of dynamic shared memory (Q tile, two stages of K
// and V tiles, barriers, 1 KiB alignment slack). sm_90a only.
#include <cuda_bf16.h>
#include <stddef.h>
#include <stdint.h>

#include "common.cuh"

#define APB_SM90_TILE_KEYS 128

// CUtensorMap's layout (cuda.h: 16 opaque 64-bit words, 128-byte aligned) without the
// driver header.
typedef struct {
  alignas(128) uint64_t opaque[16];
} apb_tensor_map;

// The kernel's only parameter, by value (__grid_constant__), mirrored by Sm90Params in
// attention_sm90.rs.
typedef struct {
  apb_tensor_map q;
  apb_tensor_map k[APB_MAX_SEGMENTS];
  apb_tensor_map v[APB_MAX_SEGMENTS];
  void* o;     // [splits][rows][q_heads][D] bf16
  float* lse;  // [splits][rows][q_heads]
  int64_t rows;
  int64_t count[APB_MAX_SEGMENTS];
  int32_t causal[APB_MAX_SEGMENTS];
  int32_t segment_count;
  int32_t q_heads;
  int32_t kv_heads;
  // The walk of key tiles is cut into this many parts, one per blockIdx.z, each writing its
  // own partial O and LSE (the launcher merges them): rows few enough to leave SMs idle then
  // still fill the GPU (the query pass, decode).
  int32_t splits;
} apb_sm90_params;

// layout: apb_sm90_params size 1280 align 128 q 0 k 128 v 640 o 1152 lse 1160 rows 1168 count 1176 causal 1208 segment_count 1224 q_heads 1228 kv_heads 1232 splits 1236
static_assert(sizeof(apb_sm90_params) == 1280 && alignof(apb_sm90_params) == 128 && offsetof(apb_sm90_params, q) == 0 &&
                  offsetof(apb_sm90_params, k) == 128 && offsetof(apb_sm90_params, v) == 640 &&
                  offsetof(apb_sm90_params, o) == 1152 && offsetof(apb_sm90_params, lse) == 1160 &&
                  offsetof(apb_sm90_params, rows) == 1168 && offsetof(apb_sm90_params, count) == 1176 &&
                  offsetof(apb_sm90_params, causal) == 1208 && offsetof(apb_sm90_params, segment_count) == 1224 &&
                  offsetof(apb_sm90_params, q_heads) == 1228 && offsetof(apb_sm90_params, kv_heads) == 1232 &&
                  offsetof(apb_sm90_params, splits) == 1236,
              "apb_sm90_params' layout is mirrored in attention_sm90.rs");

// Other targets (the compute_80 PTX) get a stub that traps: this kernel is Hopper-only.
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define APB_NO_WGMMA 1
#endif

namespace sm90 {

using namespace apb;

constexpr int kKeys = APB_SM90_TILE_KEYS;    // per K/V tile
constexpr int kStages = 2;
constexpr int kRowBytes = 128;               // 64 bf16: one row of a column box
constexpr int kBoxBytes = kKeys * kRowBytes; // a K/V column box, [128 keys][64 bf16]
[[maybe_unused]] constexpr int kQBoxRows = 64;                // Q is loaded one consumer's rows at a time

// What a head dim fixes: the column boxes per row, the K/V tile size, and the consumers.
template <int D>
struct Shape {
  static_assert(D == 64 || D == 128, "head dims 64 and 128");
  static constexpr int kBoxes = D / 64;
  static constexpr int kTileBytes = kBoxes * kBoxBytes;
  static constexpr int kConsumers = D == 64 ? 3 : 2;
  static constexpr int kRows = 64 * kConsumers;              // query rows per block
  static constexpr int kQBoxBytes = kRows * kRowBytes;       // Q's column box, [kRows][64 bf16]
  static constexpr int kQBytes = kBoxes * kQBoxBytes;
  static constexpr int kThreads = 128 * (1 + kConsumers);
  // Registers per thread after setmaxnreg: the producer gives up what the consumers take
  // (the sum stays within the SM's 64K).
  static constexpr int kProducerRegs = kConsumers == 2 ? 40 : 32;
  static constexpr int kConsumerRegs = kConsumers == 2 ? 232 : 160;
  static_assert(128 * kProducerRegs + 128 * kConsumers * kConsumerRegs <= 65536, "registers fit the SM");
};

// mbarriers, one 64-bit word each, after the tiles.
struct Barriers {
  uint64_t q_full;
  uint64_t k_full[kStages], k_empty[kStages];
  uint64_t v_full[kStages], v_empty[kStages];
};

// The dynamic shared memory attention_sm90.rs launches with (SMEM_BYTES per head dim): the
// tiles, the barriers and the slack that aligning the tiles to 1024 bytes may take.
template <int D>
constexpr int smem_bytes() {
  return Shape<D>::kQBytes + 2 * kStages * Shape<D>::kTileBytes + 1024 + 1024;
}
static_assert(sizeof(Barriers) <= 1024, "the barriers fit their kilobyte");
static_assert(smem_bytes<128>() == 163840 + 2048, "attention_sm90.rs launches d128 with 163840 + 2048 bytes");
static_assert(smem_bytes<64>() == 90112 + 2048, "attention_sm90.rs launches d64 with 90112 + 2048 bytes");

// ---- mbarrier and TMA ----------------------------------------------------------------
__device__ __forceinline__ void bar_init(uint64_t* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count));
}
__device__ __forceinline__ void bar_expect_tx(uint64_t* bar, int bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void bar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_addr(bar)) : "memory");
}
// Waits until the phase with this parity has completed. A fresh barrier counts its
// "previous" phase (parity 1) as complete, so producers start by waiting on parity 1.
__device__ __forceinline__ void bar_wait(uint64_t* bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(smem_addr(bar)), "r"(parity)
        : "memory");
  } while (!done);
}
// One box (64 bf16 wide; as many rows as the map's box) at (column, row) of the tensor `map`
// into `dst`; completes on `bar` by transaction bytes. Rows past the tensor's end arrive as
// zeros.
__device__ __forceinline__ void tma_load(unsigned char* dst, const apb_tensor_map* map, int column, int64_t row,
                                         uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(column), "r"(static_cast<int>(row)), "r"(smem_addr(bar))
      : "memory");
}

// Named barriers 1..consumers order the consumers' matrix products: consumer c waits on
// barrier 1 + c and passes the turn to the next one round (0 is __syncthreads). Each barrier
// counts the waiting warpgroup and the one passing to it.
__device__ __forceinline__ void turn_wait(int consumer) {
  asm volatile("bar.sync %0, 256;\n" ::"r"(1 + consumer) : "memory");
}
template <int kConsumers>
__device__ __forceinline__ void turn_pass(int consumer) {
  asm volatile("bar.arrive %0, 256;\n" ::"r"(1 + (consumer + 1) % kConsumers) : "memory");
}

// ---- wgmma ------------------------------------------------------------------------------
// Shared-memory matrix descriptor: start address, leading and stride byte offsets (all
// >> 4), 128-byte swizzle.
__device__ __forceinline__ uint64_t descriptor(uint32_t addr, uint32_t lbo_bytes, uint32_t sbo_bytes) {
  uint64_t d = 0;
  d |= static_cast<uint64_t>((addr >> 4) & 0x3FFF);
  d |= static_cast<uint64_t>((lbo_bytes >> 4) & 0x3FFF) << 16;
  d |= static_cast<uint64_t>((sbo_bytes >> 4) & 0x3FFF) << 32;
  d |= static_cast<uint64_t>(1) << 62;
  return d;
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Ties registers written asynchronously by wgmma to this point, so the compiler neither
// reads them before the wait nor moves them while the product runs.
template <int N>
__device__ __forceinline__ void pin(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}

#define APB_ACC64                                                                                              \
  "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27," \
  "%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53," \
  "%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}"
#define APB_F8(d, i)                                                                                             \
  "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), \
      "+f"(d[i + 7])
#define APB_F64(d) \
  APB_F8(d, 0), APB_F8(d, 8), APB_F8(d, 16), APB_F8(d, 24), APB_F8(d, 32), APB_F8(d, 40), APB_F8(d, 48), APB_F8(d, 56)
#define APB_ACC32                                                                                              \
  "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27," \
  "%28,%29,%30,%31}"
#define APB_F32(d) APB_F8(d, 0), APB_F8(d, 8), APB_F8(d, 16), APB_F8(d, 24)

#ifndef APB_NO_WGMMA
// S[64x128] (+)= Q[64x16] K^T[16x128], both K-major in shared memory.
__device__ __forceinline__ void wgmma_qk(float (&d)[64], uint64_t dq, uint64_t dk, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " APB_ACC64 ", %64, %65, p, 1, 1, 0, 0;\n}\n"
      : APB_F64(d)
      : "l"(dq), "l"(dk), "r"(accumulate));
}
// O[64xD] += P[64x16] (registers) V[16xD] (shared memory, read transposed), D = 128 or 64.
__device__ __forceinline__ void wgmma_pv(float (&d)[64], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                         uint64_t dv) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " APB_ACC64 ", {%64,%65,%66,%67}, %68, p, 1, 1, 1;\n}\n"
      : APB_F64(d)
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(dv));
}
__device__ __forceinline__ void wgmma_pv(float (&d)[32], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                         uint64_t dv) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " APB_ACC32 ", {%32,%33,%34,%35}, %36, p, 1, 1, 1;\n}\n"
      : APB_F32(d)
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(dv));
}
#endif

// ---- which tiles a block visits ----------------------------------------------------------
// Per segment, the tiles the block's last row can see; tile i of the walk is found by
// counting through at most APB_MAX_SEGMENTS segments, the same way in every role.
struct TileWalk {
  int tiles[APB_MAX_SEGMENTS];
  int total;
  int begin, end;  // this block's share of the walk: tiles begin..end
};

__device__ __forceinline__ int64_t visible_keys(const apb_sm90_params& p, int seg, int64_t row) {
  if (!p.causal[seg]) return p.count[seg];
  return lmax(0, lmin(p.count[seg], row + 1 + p.count[seg] - p.rows));
}

__device__ __forceinline__ TileWalk walk_for(const apb_sm90_params& p, int64_t last_row, int split) {
  TileWalk w;
  w.total = 0;
#pragma unroll
  for (int s = 0; s < APB_MAX_SEGMENTS; ++s) {
    w.tiles[s] = s < p.segment_count ? static_cast<int>((visible_keys(p, s, last_row) + kKeys - 1) / kKeys) : 0;
    w.total += w.tiles[s];
  }
  w.begin = static_cast<int>(static_cast<int64_t>(w.total) * split / p.splits);
  w.end = static_cast<int>(static_cast<int64_t>(w.total) * (split + 1) / p.splits);
  return w;
}

__device__ __forceinline__ void tile_at(const TileWalk& w, int i, int& seg, int64_t& first_key) {
  seg = 0;
#pragma unroll
  for (int s = 0; s < APB_MAX_SEGMENTS - 1; ++s) {
    if (seg == s && i >= w.tiles[s]) {
      i -= w.tiles[s];
      seg = s + 1;
    }
  }
  first_key = static_cast<int64_t>(i) * kKeys;
}

// ---- roles -------------------------------------------------------------------------------
template <int D>
__device__ __forceinline__ void produce(const apb_sm90_params& p, const TileWalk& w, unsigned char* sQ,
                                        unsigned char* sK, unsigned char* sV, Barriers* b, int64_t row0, int head,
                                        int kv_head) {
  using S = Shape<D>;
  bar_expect_tx(&b->q_full, S::kQBytes);
  for (int box = 0; box < S::kBoxes; ++box)
    for (int r = 0; r < S::kRows; r += kQBoxRows)
      tma_load(sQ + box * S::kQBoxBytes + r * kRowBytes, &p.q, head * D + box * 64, row0 + r, &b->q_full);
  // K of tile i+1 goes out before V of tile i: the consumers need them in that order.
  auto load = [&](const apb_tensor_map* maps, unsigned char* ring, uint64_t* full, uint64_t* empty, int i) {
    int seg;
    int64_t key0;
    tile_at(w, i, seg, key0);
    const int n = i - w.begin;  // the ring counts from this block's first tile
    const int stage = n % kStages;
    bar_wait(&empty[stage], ((n / kStages) & 1) ^ 1);
    bar_expect_tx(&full[stage], S::kTileBytes);
    for (int box = 0; box < S::kBoxes; ++box)
      tma_load(ring + stage * S::kTileBytes + box * kBoxBytes, &maps[seg], kv_head * D + box * 64, key0, &full[stage]);
  };
  if (w.begin < w.end) load(p.k, sK, b->k_full, b->k_empty, w.begin);
  for (int i = w.begin; i < w.end; ++i) {
    if (i + 1 < w.end) load(p.k, sK, b->k_full, b->k_empty, i + 1);
    load(p.v, sV, b->v_full, b->v_empty, i);
  }
}

#ifndef APB_NO_WGMMA
// Online softmax of one S tile for this thread's two rows: masks keys the rows may not see
// (only on tiles that need it), updates the running max m and partial sum l, turns S into
// P in place and returns each row's rescale factor for O.
__device__ __forceinline__ void softmax_tile(float (&s)[64], float (&m)[2], float (&l)[2], float (&rescale)[2],
                                             const apb_sm90_params& p, int seg, int64_t key0, int64_t first_row,
                                             const int64_t (&row)[2], int lane, float scale_log2) {
  const int64_t n = lmin(kKeys, p.count[seg] - key0);
  const bool mask = n < kKeys || visible_keys(p, seg, first_row) < key0 + kKeys;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if (mask) {
      const int64_t limit = lmin(visible_keys(p, seg, row[h]) - key0, n);
#pragma unroll
      for (int j = 0; j < 16; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e)
          if (j * 8 + (lane % 4) * 2 + e >= limit) s[4 * j + 2 * h + e] = -INFINITY;
    }
    float tile_max = -INFINITY;
#pragma unroll
    for (int j = 0; j < 16; ++j) tile_max = fmaxf(tile_max, fmaxf(s[4 * j + 2 * h], s[4 * j + 2 * h + 1]));
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffff, tile_max, 1));
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffff, tile_max, 2));
    const float m_new = fmaxf(m[h], tile_max);
    // A row that has seen nothing yet keeps m = -inf; exponentiate against 0 so P is 0, not NaN.
    const float base = m_new == -INFINITY ? 0.f : m_new * scale_log2;
    rescale[h] = exp2f(m[h] * scale_log2 - base);
    float sum = 0.f;
#pragma unroll
    for (int j = 0; j < 16; ++j)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const float pv = exp2f(fmaf(s[4 * j + 2 * h + e], scale_log2, -base));
        s[4 * j + 2 * h + e] = pv;
        sum += pv;
      }
    l[h] = l[h] * rescale[h] + sum;  // this thread's partial sum; lanes are added at the end
    m[h] = m_new;
  }
}

// Dims 16kk..16kk+15 lie in column box kk / 4 of Q and of K, 32 bytes into each row per step.
template <int D>
__device__ __forceinline__ void issue_qk(float (&s)[64], uint32_t q_addr, uint32_t k_addr) {
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const uint32_t step = (kk % 4) * 32;
    wgmma_qk(s, descriptor(q_addr + (kk / 4) * Shape<D>::kQBoxBytes + step, 16, 1024),
             descriptor(k_addr + (kk / 4) * kBoxBytes + step, 16, 1024), kk > 0);
  }
}

// Keys 16kk..16kk+15 are rows 16kk.. of every V column box; box b holds dims 64b..64b+63 (the
// leading-dimension step), each 8 keys one swizzle atom (the stride step).
template <int N>
__device__ __forceinline__ void issue_pv(float (&o)[N], const uint32_t (&pk)[32], uint32_t v_addr) {
#pragma unroll
  for (int kk = 0; kk < kKeys / 16; ++kk)
    wgmma_pv(o, pk[4 * kk], pk[4 * kk + 1], pk[4 * kk + 2], pk[4 * kk + 3],
             descriptor(v_addr + kk * 16 * 128, kBoxBytes, 1024));
}

__device__ __forceinline__ void pack_p(uint32_t (&pk)[32], const float (&s)[64]) {
#pragma unroll
  for (int i = 0; i < 32; ++i) pk[i] = pack_bf16(s[2 * i], s[2 * i + 1]);
}

// One arrival per warp once its share of a wgmma is complete (the empty barriers count every
// consumer warp).
__device__ __forceinline__ void release(uint64_t* bar, int lane) {
  if (lane == 0) bar_arrive(bar);
}

template <int D>
__device__ __forceinline__ void consume(const apb_sm90_params& p, const TileWalk& w, unsigned char* sQ,
                                        unsigned char* sK, unsigned char* sV, Barriers* b, int64_t row0, int head,
                                        int consumer) {
  using S = Shape<D>;
  constexpr int kTileBytes = S::kTileBytes;
  const int tid = threadIdx.x % 128, warp = tid / 32, lane = tid % 32;
  const int64_t first_row = row0 + 64 * consumer;
  const int64_t row[2] = {first_row + warp * 16 + lane / 4, first_row + warp * 16 + lane / 4 + 8};
  const float scale_log2 = 1.4426950408889634f / sqrtf(static_cast<float>(D));
  const uint32_t q_addr = smem_addr(sQ) + consumer * 64 * kRowBytes;
  const uint32_t k_addr = smem_addr(sK), v_addr = smem_addr(sV);

  // O's accumulator: per thread, 4 values for each 8 of the D columns.
  float o[D / 2], s[64];
  uint32_t pk[32];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) o[i] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f}, rescale[2];

  if (consumer == S::kConsumers - 1) turn_pass<S::kConsumers>(consumer);  // consumer 0 takes the first turn
  bar_wait(&b->q_full, 0);
  // Tile i of the walk is the block's tile w.begin + i; the ring counts from i = 0.
  const int tiles = w.end - w.begin;
  if (tiles > 0) {
    int seg;
    int64_t key0;
    tile_at(w, w.begin, seg, key0);
    bar_wait(&b->k_full[0], 0);
    turn_wait(consumer);
    wgmma_fence();
    issue_qk<D>(s, q_addr, k_addr);
    wgmma_commit();
    turn_pass<S::kConsumers>(consumer);
    wgmma_wait<0>();
    pin(s);
    release(&b->k_empty[0], lane);
    softmax_tile(s, m, l, rescale, p, seg, key0, first_row, row, lane, scale_log2);
    pack_p(pk, s);
  }
  for (int i = 1; i < tiles; ++i) {
    int seg;
    int64_t key0;
    tile_at(w, w.begin + i, seg, key0);
    const int stage = i % kStages, prev = (i - 1) % kStages;
    bar_wait(&b->k_full[stage], (i / kStages) & 1);
    turn_wait(consumer);
    wgmma_fence();
    issue_qk<D>(s, q_addr, k_addr + stage * kTileBytes);
    wgmma_commit();
    bar_wait(&b->v_full[prev], ((i - 1) / kStages) & 1);
    issue_pv(o, pk, v_addr + prev * kTileBytes);
    wgmma_commit();
    turn_pass<S::kConsumers>(consumer);
    wgmma_wait<1>();  // S of tile i is ready; P V of tile i-1 still runs
    pin(s);
    release(&b->k_empty[stage], lane);
    softmax_tile(s, m, l, rescale, p, seg, key0, first_row, row, lane, scale_log2);
    wgmma_wait<0>();
    pin(o);
    release(&b->v_empty[prev], lane);
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
      o[4 * j] *= rescale[0];
      o[4 * j + 1] *= rescale[0];
      o[4 * j + 2] *= rescale[1];
      o[4 * j + 3] *= rescale[1];
    }
    pack_p(pk, s);
  }
  if (tiles > 0) {
    const int last = (tiles - 1) % kStages;
    bar_wait(&b->v_full[last], ((tiles - 1) / kStages) & 1);
    turn_wait(consumer);
    wgmma_fence();
    issue_pv(o, pk, v_addr + last * kTileBytes);
    wgmma_commit();
    turn_pass<S::kConsumers>(consumer);
    wgmma_wait<0>();
    pin(o);
    release(&b->v_empty[last], lane);
  }
  if (consumer == 0) turn_wait(0);  // take the last consumer's last pass, so no arrival is left over

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    l[h] += __shfl_xor_sync(0xffffffff, l[h], 1);
    l[h] += __shfl_xor_sync(0xffffffff, l[h], 2);
    if (row[h] >= p.rows) continue;
    const float inv = l[h] > 0.f ? 1.f / l[h] : 0.f;
    // This split's partial output: [split][rows][q_heads] (split 0 is the output itself).
    const int64_t pair = (blockIdx.z * p.rows + row[h]) * p.q_heads + head;
    __nv_bfloat16* out = static_cast<__nv_bfloat16*>(p.o) + pair * D;
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
      const int dim = j * 8 + (lane % 4) * 2;
      *reinterpret_cast<uint32_t*>(out + dim) = pack_bf16(o[4 * j + 2 * h] * inv, o[4 * j + 2 * h + 1] * inv);
    }
    if (lane % 4 == 0)
      p.lse[pair] = l[h] > 0.f ? (m[h] * scale_log2 + log2f(l[h])) * 0.6931471805599453f : -INFINITY;
  }
}
#endif

}  // namespace sm90

using namespace sm90;

template <int D>
__device__ __forceinline__ void attention_sm90(const apb_sm90_params& p) {
#ifdef APB_NO_WGMMA
  __trap();  // built only for sm_90a; other GPUs use the portable kernel
#else
  using S = Shape<D>;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  // Swizzled tiles must start on 1024-byte boundaries (the swizzle pattern repeats there).
  unsigned char* smem = smem_raw + ((1024 - smem_addr(smem_raw) % 1024) % 1024);
  unsigned char* sQ = smem;
  unsigned char* sK = sQ + S::kQBytes;
  unsigned char* sV = sK + kStages * S::kTileBytes;
  Barriers* b = reinterpret_cast<Barriers*>(sV + kStages * S::kTileBytes);

  const int head = blockIdx.y, kv_head = head / (p.q_heads / p.kv_heads);
  // Blocks with the most causal work start first.
  const int64_t row0 = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * S::kRows;
  const TileWalk w = walk_for(p, lmin(row0 + S::kRows, p.rows) - 1, blockIdx.z);

  if (threadIdx.x == 0) {
    bar_init(&b->q_full, 1);
    for (int s = 0; s < kStages; ++s) {
      bar_init(&b->k_full[s], 1);
      bar_init(&b->v_full[s], 1);
      bar_init(&b->k_empty[s], 4 * S::kConsumers);  // one arrival per consumer warp
      bar_init(&b->v_empty[s], 4 * S::kConsumers);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();

  if (threadIdx.x < 128) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(S::kProducerRegs));
    if (threadIdx.x == 0) produce<D>(p, w, sQ, sK, sV, b, row0, head, kv_head);
  } else {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(S::kConsumerRegs));
    consume<D>(p, w, sQ, sK, sV, b, row0, head, threadIdx.x / 128 - 1);
  }
#endif
}

extern "C" __global__ void __launch_bounds__(Shape<128>::kThreads, 1)
    apb_attention_sm90_d128(const __grid_constant__ apb_sm90_params p) {
  attention_sm90<128>(p);
}

extern "C" __global__ void __launch_bounds__(Shape<64>::kThreads, 1)
    apb_attention_sm90_d64(const __grid_constant__ apb_sm90_params p) {
  attention_sm90<64>(p);
}
