// Per-Gaussian contribution statistics of rendered views, fused into one pass per pixel.
//
// Fed by gsplat's projection and tile intersection (means2d, conics, opacities, isect_offsets,
// flatten_ids), it walks each pixel's depth-sorted Gaussians exactly like gsplat's
// rasterize_to_pixels_3dgs_fwd (alpha = min(0.999, o exp(-sigma)), skip alpha < 1/255, stop
// exclusively when T (1 - alpha) <= 1e-4) and accumulates, per Gaussian i and hit pixel p with
// weight w = alpha T (3DGS Eq. 3) and optional pixel weight m_p:
//   weight_sum += m w,  weight_max = max(m w),  hit_count += m,  trans_sum += m T,
//   max_count += m at the pixel's largest-w Gaussian.
// The PyTorch path (gspruner/render/stats.py: stats_from_pairs) computes the same numbers.
#include <torch/extension.h>
#include <cuda_runtime.h>

namespace {

constexpr float ALPHA_THRESHOLD = 1.f / 255.f;

// atomic max for non-negative floats: their bit patterns order like ints
__device__ inline void atomic_max_nonneg(float *addr, float value) {
    atomicMax(reinterpret_cast<int *>(addr), __float_as_int(value));
}

__global__ void contribution_stats_kernel(
    const int C, const int N, const int width, const int height, const int tile_size,
    const int tile_width, const int tile_height,
    const float2 *__restrict__ means2d,     // [C, N, 2]
    const float3 *__restrict__ conics,      // [C, N, 3]
    const float *__restrict__ opacities,    // [C, N]
    const int32_t *__restrict__ isect_offsets, // [C, tile_height, tile_width]
    const int32_t *__restrict__ flatten_ids,   // [n_isects], index into C * N
    const int n_isects,
    const float *__restrict__ pixel_weights,   // [C, H, W] or nullptr
    float *__restrict__ weight_sum, float *__restrict__ weight_max, float *__restrict__ hit_count,
    float *__restrict__ trans_sum, float *__restrict__ max_count   // each [N]
) {
    const int cam = blockIdx.z;
    const int tile_x = blockIdx.x, tile_y = blockIdx.y;
    const int x = tile_x * tile_size + threadIdx.x;
    const int y = tile_y * tile_size + threadIdx.y;
    if (x >= width || y >= height) return;
    const float px = x + 0.5f, py = y + 0.5f;
    const int tile_id = (cam * tile_height + tile_y) * tile_width + tile_x;
    const int start = isect_offsets[tile_id];
    const int last_tile = C * tile_height * tile_width - 1;
    const int end = tile_id == last_tile ? n_isects : isect_offsets[tile_id + 1];
    const float m = pixel_weights == nullptr ? 1.f : pixel_weights[(cam * height + y) * width + x];

    float T = 1.f;
    float best_w = -1.f;
    int best_g = -1;
    for (int k = start; k < end; ++k) {
        const int flat = flatten_ids[k];
        const int g = flat % N;
        const float2 mu = means2d[flat];
        const float3 q = conics[flat];
        const float dx = mu.x - px, dy = mu.y - py;
        const float sigma = 0.5f * (q.x * dx * dx + q.z * dy * dy) + q.y * dx * dy;  // 3DGS Eq. 4 exponent
        const float alpha = fminf(0.999f, opacities[flat] * __expf(-sigma));
        if (sigma < 0.f || alpha < ALPHA_THRESHOLD) continue;
        const float next_T = T * (1.f - alpha);
        if (next_T <= 1e-4f) break;  // gsplat: this pixel is done, exclusive
        const float w = alpha * T;
        atomicAdd(weight_sum + g, m * w);
        atomic_max_nonneg(weight_max + g, m * w);
        atomicAdd(hit_count + g, m);
        atomicAdd(trans_sum + g, m * T);
        if (w > best_w) { best_w = w; best_g = g; }
        T = next_T;
    }
    if (best_g >= 0) atomicAdd(max_count + best_g, m);
}

}  // namespace

std::vector<torch::Tensor> contribution_stats(
    torch::Tensor means2d, torch::Tensor conics, torch::Tensor opacities,
    torch::Tensor isect_offsets, torch::Tensor flatten_ids, torch::Tensor pixel_weights,
    int64_t width, int64_t height, int64_t tile_size
) {
    TORCH_CHECK(means2d.is_cuda() && means2d.is_contiguous() && means2d.scalar_type() == torch::kFloat32,
                "means2d must be a contiguous float32 CUDA tensor");
    TORCH_CHECK(conics.is_contiguous() && opacities.is_contiguous() && isect_offsets.is_contiguous()
                && flatten_ids.is_contiguous(), "inputs must be contiguous");
    const int C = means2d.size(0), N = means2d.size(1);
    const int tile_height = isect_offsets.size(1), tile_width = isect_offsets.size(2);
    auto opts = means2d.options();
    auto weight_sum = torch::zeros({N}, opts), weight_max = torch::zeros({N}, opts);
    auto hit_count = torch::zeros({N}, opts), trans_sum = torch::zeros({N}, opts);
    auto max_count = torch::zeros({N}, opts);
    const bool has_weights = pixel_weights.numel() > 0;
    if (N > 0 && flatten_ids.numel() > 0) {
        dim3 threads(tile_size, tile_size, 1);
        dim3 blocks(tile_width, tile_height, C);
        contribution_stats_kernel<<<blocks, threads>>>(
            C, N, width, height, tile_size, tile_width, tile_height,
            reinterpret_cast<const float2 *>(means2d.data_ptr<float>()),
            reinterpret_cast<const float3 *>(conics.data_ptr<float>()),
            opacities.data_ptr<float>(), isect_offsets.data_ptr<int32_t>(),
            flatten_ids.data_ptr<int32_t>(), (int)flatten_ids.numel(),
            has_weights ? pixel_weights.data_ptr<float>() : nullptr,
            weight_sum.data_ptr<float>(), weight_max.data_ptr<float>(), hit_count.data_ptr<float>(),
            trans_sum.data_ptr<float>(), max_count.data_ptr<float>());
        const cudaError_t err = cudaGetLastError();
        TORCH_CHECK(err == cudaSuccess, "contribution_stats kernel: ", cudaGetErrorString(err));
    }
    return {weight_sum, weight_max, hit_count, trans_sum, max_count};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("contribution_stats", &contribution_stats, "per-Gaussian sum/max/count of alpha*T (fused)");
}
