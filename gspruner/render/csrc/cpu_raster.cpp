// Compiled CPU rasterizer for 3D Gaussian splats: gsplat 1.5.3's algorithm, one C++/OpenMP file.
//
// Stages (each a forward and an analytic backward where it is differentiable):
//   project_fwd / project_bwd   EWA projection (Zwicker et al. 2001; 3DGS Eq. 5-6), gsplat's
//                               `projection_ewa_3dgs_fused` rules: 1.3x FOV clamp, eps2d blur,
//                               opacity-aware radius, near/far and off-screen culling.
//   sh_fwd / sh_bwd             view-dependent colour, real SH degree <= 3 (gsplat's basis),
//                               clamp_min(. + 0.5, 0); sh_*_split read band 0 and the rest as two
//                               tensors (the model's sh0 / shN) in place.
//   bin_tiles                   per-tile Gaussian lists in front-to-back order (ties by id).
//   raster_fwd / raster_bwd     per-pixel front-to-back compositing (3DGS Eq. 3): alpha =
//                               min(0.999, o exp(-sigma)), skipped when sigma < 0 or alpha < 1/255,
//                               exclusive stop when T (1 - alpha) <= 1e-4; the backward walks each
//                               pixel back to front (gsplat's `rasterize_to_pixels_3dgs_bwd`); given pixel
//                               weights it also sums them per Gaussian (FastGS's masked counts, free).
//   collect_pairs               every composited (camera, Gaussian, pixel) pair, in (camera, pixel,
//                               depth) order: what the PyTorch rasterizer's `contributing_pairs` returns.
//   contribution_stats          per-Gaussian sums over those pairs without building them (the pruners'
//                               statistics of render/stats.py, FastGS's masked counts).
//   removal_loss                each Gaussian's L1 loss change when it alone is removed (the `removal`
//                               score of pruning/removal.py), also without building the pairs.
//   fisher_patches              PUP-3DGS's per-Gaussian Fisher information (pruning/sensitivity.py), also
//                               without building the pairs.
//
// The PyTorch rasterizer (torch_raster.py) is the reference; tests compare the two.
// Float32 tensors, contiguous, CPU. The forward walks a tile row by row, a row's 16 pixels as one 16-lane
// vector with AVX-512, else two 8-lane ones (see "Compositing"); the backward walks a tile's entries back to
// front, each over the rows it crosses; transmittance is float32 like gsplat's kernels. What a tile reads of
// a Gaussian is one precomputed record (SplatRecords). Gradient sums are kept per tile entry, stored in
// (camera, Gaussian) order, then reduced per Gaussian in tile order (results do not depend on the threads).

#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>
#ifdef __AVX__
#include <immintrin.h>
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

constexpr float ALPHA_THRESHOLD = 1.0f / 255.0f;
constexpr float MAX_ALPHA = 0.999f;
constexpr float T_MIN = 1e-4f;
constexpr float EXTEND_MAX = 3.33f;

using torch::Tensor;

void check(const Tensor& t, const char* name) {
    TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
    TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
    TORCH_CHECK(t.scalar_type() == torch::kFloat32, name, " must be float32");
}

int threads_or_one(int64_t n) { return n > 0 ? static_cast<int>(n) : 1; }

int thread_index() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// ------------------------------------------------------------------------------------------------
// Projection
// ------------------------------------------------------------------------------------------------

struct Camera {
    float R[9], t[3], fx, fy, cx, cy;
    float lim_x_pos, lim_x_neg, lim_y_pos, lim_y_neg;
};

Camera make_camera(const float* viewmat, const float* K, int64_t width, int64_t height) {
    Camera cam;
    for (int i = 0; i < 3; ++i) {
        for (int j = 0; j < 3; ++j) cam.R[3 * i + j] = viewmat[4 * i + j];
        cam.t[i] = viewmat[4 * i + 3];
    }
    cam.fx = K[0];
    cam.fy = K[4];
    cam.cx = K[2];
    cam.cy = K[5];
    const float tan_fovx = 0.5f * width / cam.fx, tan_fovy = 0.5f * height / cam.fy;
    cam.lim_x_pos = (width - cam.cx) / cam.fx + 0.3f * tan_fovx;
    cam.lim_x_neg = cam.cx / cam.fx + 0.3f * tan_fovx;
    cam.lim_y_pos = (height - cam.cy) / cam.fy + 0.3f * tan_fovy;
    cam.lim_y_neg = cam.cy / cam.fy + 0.3f * tan_fovy;
    return cam;
}

// R of a (not necessarily unit) quaternion wxyz, after normalization (gsplat `quat_to_rotmat`).
void quat_to_rotmat(const float* q, float* qn, float* R) {
    const float norm = std::max(std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]), 1e-12f);
    for (int i = 0; i < 4; ++i) qn[i] = q[i] / norm;
    const float w = qn[0], x = qn[1], y = qn[2], z = qn[3];
    R[0] = 1 - 2 * (y * y + z * z); R[1] = 2 * (x * y - w * z);     R[2] = 2 * (x * z + w * y);
    R[3] = 2 * (x * y + w * z);     R[4] = 1 - 2 * (x * x + z * z); R[5] = 2 * (y * z - w * x);
    R[6] = 2 * (x * z - w * y);     R[7] = 2 * (y * z + w * x);     R[8] = 1 - 2 * (x * x + y * y);
}

// Sigma (3x3, row-major) of one Gaussian: R S S^T R^T (3DGS Eq. 6) or the given upper triangle.
void covariance(const float* quat, const float* scale, const float* cov6, float* Sigma) {
    if (cov6) {
        const float v[9] = {cov6[0], cov6[1], cov6[2], cov6[1], cov6[3], cov6[4], cov6[2], cov6[4], cov6[5]};
        std::copy(v, v + 9, Sigma);
        return;
    }
    float qn[4], R[9], M[9];
    quat_to_rotmat(quat, qn, R);
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) M[3 * i + j] = R[3 * i + j] * scale[j];
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) Sigma[3 * i + j] = M[3 * i] * M[3 * j] + M[3 * i + 1] * M[3 * j + 1] + M[3 * i + 2] * M[3 * j + 2];
}

// Everything the forward computes for one (camera, Gaussian), kept for the backward.
struct ProjState {
    float mc[3];      // camera-space mean
    bool in_depth;
    float z, rz;      // z (1 when culled by depth), 1 / z
    float u, v;       // x / z, y / z before the FOV clamp
    float tx, ty;     // z * clamp(x / z), z * clamp(y / z)
    float JW[6];      // J W, 2x3 row-major
    float a, b, c;    // Sigma' = J W Sigma W^T J^T (before the blur)
    float det_orig, det;
    bool ok_det;
};

void project_one(const Camera& cam, const float* mean, const float* Sigma, float near_plane, float far_plane,
                 float eps2d, ProjState& s) {
    const float* R = cam.R;
    for (int i = 0; i < 3; ++i) s.mc[i] = R[3 * i] * mean[0] + R[3 * i + 1] * mean[1] + R[3 * i + 2] * mean[2] + cam.t[i];
    const float x = s.mc[0], y = s.mc[1];
    s.in_depth = s.mc[2] >= near_plane && s.mc[2] <= far_plane;
    s.z = s.in_depth ? s.mc[2] : 1.0f;
    s.rz = 1.0f / s.z;
    s.u = x * s.rz;
    s.v = y * s.rz;
    s.tx = s.z * std::min(std::max(s.u, -cam.lim_x_neg), cam.lim_x_pos);  // gsplat clamps x/z to 1.3 FOV
    s.ty = s.z * std::min(std::max(s.v, -cam.lim_y_neg), cam.lim_y_pos);
    // EWA Jacobian J = [[fx/z, 0, -fx tx/z^2], [0, fy/z, -fy ty/z^2]]
    const float j00 = cam.fx * s.rz, j02 = -cam.fx * s.tx * s.rz * s.rz;
    const float j11 = cam.fy * s.rz, j12 = -cam.fy * s.ty * s.rz * s.rz;
    for (int k = 0; k < 3; ++k) {
        s.JW[k] = j00 * R[k] + j02 * R[6 + k];
        s.JW[3 + k] = j11 * R[3 + k] + j12 * R[6 + k];
    }
    float S0[3], S1[3];  // Sigma (J W)^T columns
    for (int i = 0; i < 3; ++i) {
        S0[i] = Sigma[3 * i] * s.JW[0] + Sigma[3 * i + 1] * s.JW[1] + Sigma[3 * i + 2] * s.JW[2];
        S1[i] = Sigma[3 * i] * s.JW[3] + Sigma[3 * i + 1] * s.JW[4] + Sigma[3 * i + 2] * s.JW[5];
    }
    s.a = s.JW[0] * S0[0] + s.JW[1] * S0[1] + s.JW[2] * S0[2];
    s.b = s.JW[0] * S1[0] + s.JW[1] * S1[1] + s.JW[2] * S1[2];
    s.c = s.JW[3] * S1[0] + s.JW[4] * S1[1] + s.JW[5] * S1[2];
    s.det_orig = s.a * s.c - s.b * s.b;
    const float det = (s.a + eps2d) * (s.c + eps2d) - s.b * s.b;
    s.ok_det = det > 0;
    s.det = s.ok_det ? det : 1.0f;
}

}  // namespace

// -> radii [C, N, 2] int32, means2d [C, N, 2], depths [C, N], conics [C, N, 3], opacities [C, N],
//    compensations [C, N] (ones unless antialiased)
std::vector<Tensor> project_fwd(Tensor means, Tensor quats, Tensor scales, Tensor covars, Tensor opacities,
                                Tensor viewmats, Tensor Ks, int64_t width, int64_t height, double near_plane,
                                double far_plane, double radius_clip, double eps2d, bool antialiased,
                                int64_t threads) {
    check(means, "means");
    check(opacities, "opacities");
    check(viewmats, "viewmats");
    check(Ks, "Ks");
    const bool use_cov = covars.numel() > 0;
    if (use_cov) check(covars, "covars");
    else { check(quats, "quats"); check(scales, "scales"); }
    const int64_t N = means.size(0), C = viewmats.size(0);
    auto f32 = means.options();
    Tensor radii = torch::zeros({C, N, 2}, f32.dtype(torch::kInt32));
    Tensor means2d = torch::empty({C, N, 2}, f32), depths = torch::empty({C, N}, f32);
    Tensor conics = torch::empty({C, N, 3}, f32), opac = torch::empty({C, N}, f32);
    Tensor comp = torch::ones({C, N}, f32);
    const float* pm = means.data_ptr<float>();
    const float* pq = use_cov ? nullptr : quats.data_ptr<float>();
    const float* ps = use_cov ? nullptr : scales.data_ptr<float>();
    const float* pc = use_cov ? covars.data_ptr<float>() : nullptr;
    const float* po = opacities.data_ptr<float>();
    std::vector<Camera> cams;
    for (int64_t c = 0; c < C; ++c)
        cams.push_back(make_camera(viewmats.data_ptr<float>() + 16 * c, Ks.data_ptr<float>() + 9 * c, width, height));
    int32_t* pr = radii.data_ptr<int32_t>();
    float *pm2 = means2d.data_ptr<float>(), *pd = depths.data_ptr<float>(), *pcn = conics.data_ptr<float>();
    float *pop = opac.data_ptr<float>(), *pcomp = comp.data_ptr<float>();
    const float eps = static_cast<float>(eps2d), clip = static_cast<float>(radius_clip);

#pragma omp parallel for schedule(static) num_threads(threads_or_one(threads))
    for (int64_t n = 0; n < N; ++n) {
        float Sigma[9];
        covariance(pq ? pq + 4 * n : nullptr, ps ? ps + 3 * n : nullptr, pc ? pc + 6 * n : nullptr, Sigma);
        for (int64_t c = 0; c < C; ++c) {
            const Camera& cam = cams[c];
            ProjState s;
            project_one(cam, pm + 3 * n, Sigma, static_cast<float>(near_plane), static_cast<float>(far_plane), eps, s);
            const int64_t i = c * N + n;
            const float mx = cam.fx * s.mc[0] * s.rz + cam.cx, my = cam.fy * s.mc[1] * s.rz + cam.cy;
            pm2[2 * i] = mx;
            pm2[2 * i + 1] = my;
            pd[i] = s.mc[2];
            const float a = s.a + eps, cc = s.c + eps;  // add_blur: Sigma' + eps2d I
            pcn[3 * i] = cc / s.det;
            pcn[3 * i + 1] = -s.b / s.det;
            pcn[3 * i + 2] = a / s.det;
            float o = po[n];
            if (antialiased) {  // Mip-Splatting compensation sqrt(det Sigma' / det(Sigma' + eps I))
                pcomp[i] = std::sqrt(std::max(s.det_orig / s.det, 1e-12f));
                o *= pcomp[i];
            }
            pop[i] = o;
            const bool ok_opac = o >= ALPHA_THRESHOLD;
            const float extend = std::min(EXTEND_MAX, std::sqrt(2.0f * std::log(std::max(o, ALPHA_THRESHOLD) / ALPHA_THRESHOLD)));
            const float rx = std::ceil(extend * std::sqrt(std::max(a, 0.0f)));
            const float ry = std::ceil(extend * std::sqrt(std::max(cc, 0.0f)));
            bool valid = s.in_depth && s.ok_det && ok_opac && !(rx <= clip && ry <= clip);
            valid = valid && !(mx + rx <= 0 || mx - rx >= width || my + ry <= 0 || my - ry >= height);
            if (valid) {
                pr[2 * i] = static_cast<int32_t>(rx);
                pr[2 * i + 1] = static_cast<int32_t>(ry);
            }
        }
    }
    return {radii, means2d, depths, conics, opac, comp};
}

// Gradients of project_fwd's float outputs -> v_means [N, 3], v_quats [N, 4], v_scales [N, 3] (or
// v_covars [N, 6] upper triangle), v_opacities [N]. Entries culled by radii == 0 get no gradient
// from the rasterizer; depth gradients still flow for every entry inside near/far.
std::vector<Tensor> project_bwd(Tensor means, Tensor quats, Tensor scales, Tensor covars, Tensor opacities,
                                Tensor viewmats, Tensor Ks, int64_t width, int64_t height, double near_plane,
                                double far_plane, double eps2d, bool antialiased, Tensor v_means2d,
                                Tensor v_depths, Tensor v_conics, Tensor v_opac, int64_t threads) {
    check(v_means2d, "v_means2d");
    check(v_depths, "v_depths");
    check(v_conics, "v_conics");
    check(v_opac, "v_opac");
    const bool use_cov = covars.numel() > 0;
    const int64_t N = means.size(0), C = viewmats.size(0);
    auto f32 = means.options();
    Tensor v_means = torch::zeros({N, 3}, f32), v_opacities = torch::zeros({N}, f32);
    Tensor v_quats = use_cov ? torch::zeros({0}, f32) : torch::zeros({N, 4}, f32);
    Tensor v_scales = use_cov ? torch::zeros({0}, f32) : torch::zeros({N, 3}, f32);
    Tensor v_covars = use_cov ? torch::zeros({N, 6}, f32) : torch::zeros({0}, f32);
    const float* pm = means.data_ptr<float>();
    const float* pq = use_cov ? nullptr : quats.data_ptr<float>();
    const float* ps = use_cov ? nullptr : scales.data_ptr<float>();
    const float* pc = use_cov ? covars.data_ptr<float>() : nullptr;
    const float* po = opacities.data_ptr<float>();
    std::vector<Camera> cams;
    for (int64_t c = 0; c < C; ++c)
        cams.push_back(make_camera(viewmats.data_ptr<float>() + 16 * c, Ks.data_ptr<float>() + 9 * c, width, height));
    const float *gm2 = v_means2d.data_ptr<float>(), *gd = v_depths.data_ptr<float>();
    const float *gcn = v_conics.data_ptr<float>(), *gop = v_opac.data_ptr<float>();
    float *vm = v_means.data_ptr<float>(), *vo = v_opacities.data_ptr<float>();
    float* vq = use_cov ? nullptr : v_quats.data_ptr<float>();
    float* vs = use_cov ? nullptr : v_scales.data_ptr<float>();
    float* vc = use_cov ? v_covars.data_ptr<float>() : nullptr;
    const float eps = static_cast<float>(eps2d);

#pragma omp parallel for schedule(static) num_threads(threads_or_one(threads))
    for (int64_t n = 0; n < N; ++n) {
        float Sigma[9];
        bool have_sigma = false;  // computed at the first camera that passes a gradient (outputs start at 0)
        double vSigma[9] = {0}, vmean[3] = {0}, vo_n = 0;
        for (int64_t c = 0; c < C; ++c) {
            const int64_t i = c * N + n;
            const float g_mx = gm2[2 * i], g_my = gm2[2 * i + 1], g_depth = gd[i];
            const float g_q0 = gcn[3 * i], g_q1 = gcn[3 * i + 1], g_q2 = gcn[3 * i + 2], g_op = gop[i];
            if (g_mx == 0 && g_my == 0 && g_depth == 0 && g_q0 == 0 && g_q1 == 0 && g_q2 == 0 && g_op == 0) continue;
            if (!have_sigma) {
                covariance(pq ? pq + 4 * n : nullptr, ps ? ps + 3 * n : nullptr, pc ? pc + 6 * n : nullptr, Sigma);
                have_sigma = true;
            }
            const Camera& cam = cams[c];
            const float* R = cam.R;
            ProjState s;
            project_one(cam, pm + 3 * n, Sigma, static_cast<float>(near_plane), static_cast<float>(far_plane), eps, s);
            const float a = s.a + eps, cc = s.c + eps, b = s.b, det = s.det;
            // opacity (x compensation in antialiased mode)
            float v_a = 0, v_b = 0, v_c = 0, v_det = 0;  // v_a, v_c: of the blurred entries
            float v_det_orig = 0;
            if (antialiased) {
                const float ratio = s.det_orig / det;
                const float comp = std::sqrt(std::max(ratio, 1e-12f));
                vo_n += g_op * comp;
                const float v_ratio = ratio >= 1e-12f ? g_op * po[n] * 0.5f / comp : 0.0f;
                v_det_orig = v_ratio / det;
                v_det = -v_ratio * s.det_orig / (det * det);
            } else {
                vo_n += g_op;
            }
            // conics (c/det, -b/det, a/det)
            v_c += g_q0 / det;
            v_b += -g_q1 / det;
            v_a += g_q2 / det;
            v_det += -(g_q0 * cc - g_q1 * b + g_q2 * a) / (det * det);
            if (!s.ok_det) v_det = 0;  // det was replaced by a constant
            v_a += v_det * cc;
            v_c += v_det * a;
            v_b += -2 * b * v_det;
            v_a += v_det_orig * s.c;  // det_orig = a c - b^2 of the unblurred entries
            v_c += v_det_orig * s.a;
            v_b += -2 * b * v_det_orig;
            // Sigma' = A Sigma A^T, A = J W: v_Sigma = A^T G A, v_A = 2 G A Sigma, G = [[v_a, v_b/2], [v_b/2, v_c]]
            const float G[4] = {v_a, 0.5f * v_b, 0.5f * v_b, v_c};
            const float* A = s.JW;
            for (int p = 0; p < 3; ++p)
                for (int q = 0; q < 3; ++q)
                    vSigma[3 * p + q] += A[p] * (G[0] * A[q] + G[1] * A[3 + q]) + A[3 + p] * (G[2] * A[q] + G[3] * A[3 + q]);
            float GA[6], vA[6];
            for (int k = 0; k < 3; ++k) {
                GA[k] = G[0] * A[k] + G[1] * A[3 + k];
                GA[3 + k] = G[2] * A[k] + G[3] * A[3 + k];
            }
            for (int r = 0; r < 2; ++r)
                for (int k = 0; k < 3; ++k)
                    vA[3 * r + k] = 2 * (GA[3 * r] * Sigma[k] + GA[3 * r + 1] * Sigma[3 + k] + GA[3 * r + 2] * Sigma[6 + k]);
            // A = J W: v_J = v_A W^T (only the non-zero entries of J matter)
            const float vJ00 = vA[0] * R[0] + vA[1] * R[1] + vA[2] * R[2];
            const float vJ02 = vA[0] * R[6] + vA[1] * R[7] + vA[2] * R[8];
            const float vJ11 = vA[3] * R[3] + vA[4] * R[4] + vA[5] * R[5];
            const float vJ12 = vA[3] * R[6] + vA[4] * R[7] + vA[5] * R[8];
            const float rz = s.rz, rz2 = rz * rz;
            float v_rz = vJ00 * cam.fx + vJ11 * cam.fy;
            float v_tx = -vJ02 * cam.fx * rz2, v_ty = -vJ12 * cam.fy * rz2;
            v_rz += -vJ02 * cam.fx * s.tx * 2 * rz - vJ12 * cam.fy * s.ty * 2 * rz;
            // means2d = (fx x / z + cx, fy y / z + cy)
            float v_x = g_mx * cam.fx * rz, v_y = g_my * cam.fy * rz;
            v_rz += g_mx * cam.fx * s.mc[0] + g_my * cam.fy * s.mc[1];
            // tx = z clamp(x / z): the clamp passes the gradient only inside its range
            float v_z = v_tx * (s.tx * rz) + v_ty * (s.ty * rz);
            if (s.u >= -cam.lim_x_neg && s.u <= cam.lim_x_pos) {
                const float v_u = v_tx * s.z;
                v_x += v_u * rz;
                v_rz += v_u * s.mc[0];
            }
            if (s.v >= -cam.lim_y_neg && s.v <= cam.lim_y_pos) {
                const float v_v = v_ty * s.z;
                v_y += v_v * rz;
                v_rz += v_v * s.mc[1];
            }
            v_z += -v_rz * rz2;
            float v_mc[3] = {v_x, v_y, g_depth + (s.in_depth ? v_z : 0.0f)};
            for (int k = 0; k < 3; ++k) vmean[k] += R[k] * v_mc[0] + R[3 + k] * v_mc[1] + R[6 + k] * v_mc[2];
        }
        if (!have_sigma) continue;  // no camera passed a gradient: every output stays 0
        for (int k = 0; k < 3; ++k) vm[3 * n + k] = static_cast<float>(vmean[k]);
        vo[n] = static_cast<float>(vo_n);
        if (vc) {
            const double* S = vSigma;
            const double out[6] = {S[0], S[1] + S[3], S[2] + S[6], S[4], S[5] + S[7], S[8]};
            for (int k = 0; k < 6; ++k) vc[6 * n + k] = static_cast<float>(out[k]);
            continue;
        }
        // Sigma = M M^T, M = R S: v_M = (v_Sigma + v_Sigma^T) M
        float qn[4], Rq[9], M[9];
        const float* sc = ps + 3 * n;
        quat_to_rotmat(pq + 4 * n, qn, Rq);
        for (int p = 0; p < 3; ++p)
            for (int q = 0; q < 3; ++q) M[3 * p + q] = Rq[3 * p + q] * sc[q];
        double vM[9];
        for (int p = 0; p < 3; ++p)
            for (int q = 0; q < 3; ++q) {
                double acc = 0;
                for (int k = 0; k < 3; ++k) acc += (vSigma[3 * p + k] + vSigma[3 * k + p]) * M[3 * k + q];
                vM[3 * p + q] = acc;
            }
        double vR[9], vsc[3] = {0, 0, 0};
        for (int p = 0; p < 3; ++p)
            for (int q = 0; q < 3; ++q) {
                vR[3 * p + q] = vM[3 * p + q] * sc[q];
                vsc[q] += vM[3 * p + q] * Rq[3 * p + q];
            }
        for (int k = 0; k < 3; ++k) vs[3 * n + k] = static_cast<float>(vsc[k]);
        const double w = qn[0], x = qn[1], y = qn[2], z = qn[3];
        const double* v = vR;
        double vqn[4];
        vqn[0] = 2 * (-z * v[1] + y * v[2] + z * v[3] - x * v[5] - y * v[6] + x * v[7]);
        vqn[1] = 2 * (y * v[1] + z * v[2] + y * v[3] - 2 * x * v[4] - w * v[5] + z * v[6] + w * v[7] - 2 * x * v[8]);
        vqn[2] = 2 * (-2 * y * v[0] + x * v[1] + w * v[2] + x * v[3] + z * v[5] - w * v[6] + z * v[7] - 2 * y * v[8]);
        vqn[3] = 2 * (-2 * z * v[0] - w * v[1] + x * v[2] + w * v[3] - 2 * z * v[4] + y * v[5] + x * v[6] + y * v[7]);
        // qn = q / |q|: v_q = (v_qn - qn (qn . v_qn)) / |q|
        const float* q = pq + 4 * n;
        const double norm = std::max(std::sqrt(double(q[0]) * q[0] + double(q[1]) * q[1] + double(q[2]) * q[2] + double(q[3]) * q[3]), 1e-12);
        const double dot = qn[0] * vqn[0] + qn[1] * vqn[1] + qn[2] * vqn[2] + qn[3] * vqn[3];
        for (int k = 0; k < 4; ++k) vq[4 * n + k] = static_cast<float>((vqn[k] - qn[k] * dot) / norm);
    }
    return {v_means, v_quats, v_scales, v_covars, v_opacities};
}

// ------------------------------------------------------------------------------------------------
// Spherical harmonics (degree <= 3), gsplat's / INRIA's basis
// ------------------------------------------------------------------------------------------------

namespace {

constexpr float SH_C0 = 0.2820947917738781f;
constexpr float SH_C1 = 0.48860251190292f;

// Y [16] at unit d; with dY != nullptr also dY/dx, dY/dy, dY/dz [3][16].
void sh_bases(int degree, float x, float y, float z, float* Y, float (*dY)[16]) {
    Y[0] = SH_C0;
    if (dY) for (int k = 0; k < 3; ++k) std::fill(dY[k], dY[k] + 16, 0.0f);
    if (degree < 1) return;
    Y[1] = -SH_C1 * y; Y[2] = SH_C1 * z; Y[3] = -SH_C1 * x;
    if (dY) { dY[1][1] = -SH_C1; dY[2][2] = SH_C1; dY[0][3] = -SH_C1; }
    if (degree < 2) return;
    const float z2 = z * z, c1 = x * x - y * y, s1 = 2 * x * y;
    const float B = -1.092548430592079f, ta = 0.5462742152960395f, tb = B * z;
    const float P = 0.9461746957575601f, Q = 0.3153915652525201f;
    Y[4] = ta * s1; Y[5] = tb * y; Y[6] = P * z2 - Q; Y[7] = tb * x; Y[8] = ta * c1;
    if (dY) {
        dY[0][4] = 2 * ta * y; dY[1][4] = 2 * ta * x;
        dY[1][5] = tb; dY[2][5] = B * y;
        dY[2][6] = 2 * P * z;
        dY[0][7] = tb; dY[2][7] = B * x;
        dY[0][8] = 2 * ta * x; dY[1][8] = -2 * ta * y;
    }
    if (degree < 3) return;
    const float E = -2.285228997322329f, F = 0.4570457994644658f, Bz = 1.445305721320277f;
    const float A3 = -0.5900435899266435f, G1 = 1.865881662950577f, G2 = 1.119528997770346f;
    const float tc = E * z2 + F, tb3 = Bz * z;
    const float c2 = x * c1 - y * s1, s2 = x * s1 + y * c1;
    Y[9] = A3 * s2; Y[10] = tb3 * s1; Y[11] = tc * y; Y[12] = z * (G1 * z2 - G2);
    Y[13] = tc * x; Y[14] = tb3 * c1; Y[15] = A3 * c2;
    if (dY) {
        dY[0][9] = A3 * 6 * x * y; dY[1][9] = A3 * 3 * (x * x - y * y);
        dY[0][10] = 2 * tb3 * y; dY[1][10] = 2 * tb3 * x; dY[2][10] = Bz * s1;
        dY[1][11] = tc; dY[2][11] = 2 * E * z * y;
        dY[2][12] = 3 * G1 * z2 - G2;
        dY[0][13] = tc; dY[2][13] = 2 * E * z * x;
        dY[0][14] = 2 * tb3 * x; dY[1][14] = -2 * tb3 * y; dY[2][14] = Bz * c1;
        dY[0][15] = A3 * 3 * (x * x - y * y); dY[1][15] = -A3 * 6 * x * y;
    }
}

// Where the SH coefficients of (camera c, Gaussian n) are: band 0 and bands 1.. may be one tensor
// [(C,) N, K, 3] or two (sh0 [N, 1, 3] and shN [N, K - 1, 3], read in place: no [N, K, 3] copy).
// Row strides in floats; cam_* = 0 when the coefficients are shared by every camera.
template <typename P>
struct ShCoeffs {
    P* p0;
    P* pN;
    int64_t s0, sN, cam0, camN, K;  // K: bands 0..K-1 stored
    P* band0(int64_t c, int64_t n) const { return p0 + c * cam0 + n * s0; }
    P* bands(int64_t c, int64_t n) const { return pN + c * camN + n * sN; }  // band b >= 1 at (b - 1) * 3
};

template <typename P>
ShCoeffs<P> one_tensor(P* pk, int64_t N, int64_t K, bool per_cam) {
    return {pk, pk + 3, K * 3, K * 3, per_cam ? N * K * 3 : 0, per_cam ? N * K * 3 : 0, K};
}

// colors [C, N, 3] = clamp_min(sum_k Y_k(d) c_k + 0.5, 0), d = normalize(mean - campos_c), for the
// (camera, Gaussian) entries with radii > 0; 0 for culled ones (gsplat's SH `masks`: nothing renders them).
Tensor sh_forward(int64_t degree, const Tensor& means, const Tensor& campos, const ShCoeffs<const float>& co,
                  const Tensor& radii, int64_t threads) {
    TORCH_CHECK(degree >= 0 && degree <= 3, "compiled SH supports degree 0..3");
    TORCH_CHECK(co.K >= (degree + 1) * (degree + 1), "fewer SH coefficients than the degree needs");
    const int64_t N = means.size(0), C = campos.size(0);
    const int nb = static_cast<int>((degree + 1) * (degree + 1));
    Tensor colors = torch::empty({C, N, 3}, means.options());
    const float *pm = means.data_ptr<float>(), *pc = campos.data_ptr<float>();
    const int32_t* pr = radii.data_ptr<int32_t>();
    float* out = colors.data_ptr<float>();
#pragma omp parallel for schedule(static) num_threads(threads_or_one(threads))
    for (int64_t n = 0; n < N; ++n) {
        for (int64_t c = 0; c < C; ++c) {
            if (pr[2 * (c * N + n)] <= 0 || pr[2 * (c * N + n) + 1] <= 0) {
                std::fill(out + (c * N + n) * 3, out + (c * N + n) * 3 + 3, 0.0f);
                continue;
            }
            float d[3];
            for (int k = 0; k < 3; ++k) d[k] = pm[3 * n + k] - pc[3 * c + k];
            const float norm = std::max(std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]), 1e-12f);
            float Y[16];
            sh_bases(static_cast<int>(degree), d[0] / norm, d[1] / norm, d[2] / norm, Y, nullptr);
            const float *c0 = co.band0(c, n), *cN = co.bands(c, n);
            float rgb[3] = {0, 0, 0};
            for (int b = 0; b < nb; ++b) {
                const float* ck = b == 0 ? c0 : cN + 3 * (b - 1);
                for (int ch = 0; ch < 3; ++ch) rgb[ch] += Y[b] * ck[ch];
            }
            for (int ch = 0; ch < 3; ++ch) out[(c * N + n) * 3 + ch] = std::max(rgb[ch] + 0.5f, 0.0f);
        }
    }
    return colors;
}

// -> v_means [N, 3] (through the view direction); the coefficients' gradient written through `vo` (the
// coefficients' layout, every element written: zeros past the degree and for culled entries)
Tensor sh_backward(int64_t degree, const Tensor& means, const Tensor& campos, const ShCoeffs<const float>& co,
                   const ShCoeffs<float>& vo, bool per_cam, const Tensor& radii, const Tensor& v_colors,
                   int64_t threads) {
    check(v_colors, "v_colors");
    const int64_t N = means.size(0), C = campos.size(0), K = co.K;
    const int nb = static_cast<int>((degree + 1) * (degree + 1));
    Tensor v_means = torch::empty({N, 3}, means.options());
    const float *pm = means.data_ptr<float>(), *pc = campos.data_ptr<float>();
    const float* gv = v_colors.data_ptr<float>();
    const int32_t* pr = radii.data_ptr<int32_t>();
    float* vm = v_means.data_ptr<float>();
#pragma omp parallel for schedule(static) num_threads(threads_or_one(threads))
    for (int64_t n = 0; n < N; ++n) {
        float vmean[3] = {0, 0, 0}, vck[16 * 3];  // every output element is written (no zero fill first)
        for (int64_t c = 0; c < C; ++c) {
            if (per_cam || c == 0) std::fill(vck, vck + nb * 3, 0.0f);
            const int64_t i = c * N + n;
            const bool visible = pr[2 * i] > 0 && pr[2 * i + 1] > 0;  // culled entries: no colour, no gradient
            if (visible) {
                float d[3];
                for (int k = 0; k < 3; ++k) d[k] = pm[3 * n + k] - pc[3 * c + k];
                const float norm = std::max(std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]), 1e-12f);
                const float u[3] = {d[0] / norm, d[1] / norm, d[2] / norm};
                float Y[16], dY[3][16];
                sh_bases(static_cast<int>(degree), u[0], u[1], u[2], Y, dY);
                const float *c0 = co.band0(c, n), *cN = co.bands(c, n);
                float rgb[3] = {0, 0, 0};
                for (int b = 0; b < nb; ++b) {
                    const float* ck = b == 0 ? c0 : cN + 3 * (b - 1);
                    for (int ch = 0; ch < 3; ++ch) rgb[ch] += Y[b] * ck[ch];
                }
                float g[3];
                for (int ch = 0; ch < 3; ++ch) g[ch] = rgb[ch] + 0.5f >= 0.0f ? gv[(c * N + n) * 3 + ch] : 0.0f;  // clamp_min
                float vu[3] = {0, 0, 0};
                for (int b = 0; b < nb; ++b) {
                    const float* ck = b == 0 ? c0 : cN + 3 * (b - 1);
                    const float cg = ck[0] * g[0] + ck[1] * g[1] + ck[2] * g[2];
                    for (int ch = 0; ch < 3; ++ch) vck[3 * b + ch] += Y[b] * g[ch];
                    for (int k = 0; k < 3; ++k) vu[k] += dY[k][b] * cg;
                }
                // u = d / |d|: v_d = (v_u - u (u . v_u)) / |d|
                const float dot = u[0] * vu[0] + u[1] * vu[1] + u[2] * vu[2];
                for (int k = 0; k < 3; ++k) vmean[k] += (vu[k] - u[k] * dot) / norm;
            }
            if (per_cam || c == C - 1) {  // this coefficient block is complete: write it, zeros past the degree
                const int64_t cc = per_cam ? c : 0;
                std::copy(vck, vck + 3, vo.band0(cc, n));
                float* dst = vo.bands(cc, n);
                if (nb > 1) std::copy(vck + 3, vck + nb * 3, dst);
                std::fill(dst + std::max(nb - 1, 0) * 3, dst + (K - 1) * 3, 0.0f);
            }
        }
        for (int k = 0; k < 3; ++k) vm[3 * n + k] = vmean[k];
    }
    return v_means;
}

void check_rows(const Tensor& t, const char* name) {  // [N, B, 3] float32 CPU, each row's B x 3 contiguous
    TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && t.dim() == 3 && t.size(2) == 3 &&
                (t.numel() == 0 || (t.stride(2) == 1 && t.stride(1) == 3)), name,
                ": float32 CPU [N, B, 3] with contiguous rows expected");
}

}  // namespace

// coeffs [N, K, 3] or [C, N, K, 3], K >= (degree + 1)^2; campos [C, 3]; radii [C, N, 2] int32 -> colors [C, N, 3]
Tensor sh_fwd(int64_t degree, Tensor means, Tensor campos, Tensor coeffs, Tensor radii, int64_t threads) {
    check(means, "means");
    check(campos, "campos");
    check(coeffs, "coeffs");
    const bool per_cam = coeffs.dim() == 4;
    return sh_forward(degree, means, campos,
                      one_tensor<const float>(coeffs.data_ptr<float>(), means.size(0), coeffs.size(-2), per_cam),
                      radii, threads);
}

// -> v_means [N, 3], v_coeffs (coeffs' shape)
std::vector<Tensor> sh_bwd(int64_t degree, Tensor means, Tensor campos, Tensor coeffs, Tensor radii,
                           Tensor v_colors, int64_t threads) {
    const bool per_cam = coeffs.dim() == 4;
    const int64_t N = means.size(0), K = coeffs.size(-2);
    Tensor v_coeffs = torch::empty_like(coeffs);
    Tensor v_means = sh_backward(degree, means, campos, one_tensor<const float>(coeffs.data_ptr<float>(), N, K, per_cam),
                                 one_tensor<float>(v_coeffs.data_ptr<float>(), N, K, per_cam), per_cam, radii,
                                 v_colors, threads);
    return {v_means, v_coeffs};
}

// The same with band 0 and bands 1.. as two tensors, read in place (sh0 [N, 1, 3], shN [N, K - 1, 3], rows
// contiguous, e.g. the model's two parameters) -> colors [C, N, 3]
Tensor sh_fwd_split(int64_t degree, Tensor means, Tensor campos, Tensor sh0, Tensor shN, Tensor radii, int64_t threads) {
    check(means, "means");
    check(campos, "campos");
    check_rows(sh0, "sh0");
    check_rows(shN, "shN");
    const ShCoeffs<const float> co{sh0.data_ptr<float>(), shN.data_ptr<float>(), sh0.stride(0), shN.stride(0), 0, 0,
                                   1 + shN.size(1)};
    return sh_forward(degree, means, campos, co, radii, threads);
}

// -> v_means [N, 3], v_sh0 [N, 1, 3], v_shN [N, K - 1, 3]
std::vector<Tensor> sh_bwd_split(int64_t degree, Tensor means, Tensor campos, Tensor sh0, Tensor shN, Tensor radii,
                                 Tensor v_colors, int64_t threads) {
    const int64_t N = means.size(0), K = 1 + shN.size(1);
    Tensor v0 = torch::empty({N, 1, 3}, sh0.options()), vN = torch::empty({N, K - 1, 3}, shN.options());
    const ShCoeffs<const float> co{sh0.data_ptr<float>(), shN.data_ptr<float>(), sh0.stride(0), shN.stride(0), 0, 0, K};
    const ShCoeffs<float> vo{v0.data_ptr<float>(), vN.data_ptr<float>(), 3, (K - 1) * 3, 0, 0, K};
    Tensor v_means = sh_backward(degree, means, campos, co, vo, false, radii, v_colors, threads);
    return {v_means, v0, vN};
}

// ------------------------------------------------------------------------------------------------
// Tile binning
// ------------------------------------------------------------------------------------------------

namespace {

// Stable LSD radix sort of (depth, id) pairs by depth (ids arrive ascending, so ties stay by id: gsplat's
// order). Float bits are mapped to unsigned keys that sort like the floats, negatives included.
void sort_by_depth(std::vector<std::pair<float, int32_t>>& items) {
    const size_t n = items.size();
    std::vector<uint32_t> key(n), key2(n);
    std::vector<std::pair<float, int32_t>> tmp(n);
    for (size_t i = 0; i < n; ++i) {
        uint32_t b;
        std::memcpy(&b, &items[i].first, sizeof(b));
        key[i] = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
    }
    for (int shift = 0; shift < 32; shift += 11) {
        size_t count[2049] = {0};
        for (size_t i = 0; i < n; ++i) count[((key[i] >> shift) & 2047u) + 1]++;
        for (int b = 0; b < 2048; ++b) count[b + 1] += count[b];
        for (size_t i = 0; i < n; ++i) {
            const size_t dst = count[(key[i] >> shift) & 2047u]++;
            tmp[dst] = items[i];
            key2[dst] = key[i];
        }
        items.swap(tmp);
        key.swap(key2);
    }
}

}  // namespace

// -> tile_offsets [C * th * tw + 1] int32, flat ids [I] int32 (camera-major, each tile's list front to
// back, ties by Gaussian id: gsplat's sort), and the same entries in (camera, Gaussian) order for the
// backward's per-Gaussian sums: first [C * N + 1] int32 (Gaussian i's entries are first[i] .. first[i + 1] - 1,
// in tile order) and rank [I] int32 (entry q of the tile lists is number rank[q] there). Tiles of a Gaussian:
// gsplat `isect_tiles`' float rule. Boxes in parallel over Gaussians, one depth sort per camera, then each
// thread counts and fills a band of tile rows (disjoint writes: the lists do not depend on the threads).
std::vector<Tensor> bin_tiles(Tensor means2d, Tensor radii, Tensor depths, int64_t width, int64_t height,
                              int64_t tile_size, int64_t threads) {
    check(means2d, "means2d");
    check(depths, "depths");
    const int64_t C = means2d.size(0), N = means2d.size(1);
    const int64_t tw = (width + tile_size - 1) / tile_size, th = (height + tile_size - 1) / tile_size;
    const int64_t T = tw * th;
    const float *pm = means2d.data_ptr<float>(), *pd = depths.data_ptr<float>();
    const int32_t* pr = radii.data_ptr<int32_t>();
    const int nt = threads_or_one(threads);
    std::vector<int32_t> counts(C * T + 1, 0);
    std::vector<int32_t> box(C * N * 4);  // tiles [x0, x1) x [y0, y1); x1 = 0 when the Gaussian is not binned
    Tensor first_t = torch::empty({C * N + 1}, torch::kInt32);
    int32_t* first = first_t.data_ptr<int32_t>();
    const float ts = static_cast<float>(tile_size);
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t i = 0; i < C * N; ++i) {
        int32_t* bx = &box[4 * i];
        bx[0] = bx[1] = bx[2] = bx[3] = 0;
        if (pr[2 * i] <= 0 || pr[2 * i + 1] <= 0) continue;
        const float mx = pm[2 * i] / ts, my = pm[2 * i + 1] / ts;
        const float rx = pr[2 * i] / ts, ry = pr[2 * i + 1] / ts;
        auto clampi = [](float v, int64_t hi) {
            if (std::isnan(v)) return int32_t(0);
            return static_cast<int32_t>(std::min(std::max(v, 0.0f), static_cast<float>(hi)));
        };
        const int32_t x0 = clampi(std::floor(mx - rx), tw), x1 = clampi(std::ceil(mx + rx), tw);
        const int32_t y0 = clampi(std::floor(my - ry), th), y1 = clampi(std::ceil(my + ry), th);
        if (x1 <= x0 || y1 <= y0) continue;
        bx[0] = x0; bx[1] = y0; bx[2] = x1; bx[3] = y1;
    }
    first[0] = 0;
    for (int64_t i = 0; i < C * N; ++i) {
        const int32_t* bx = &box[4 * i];
        first[i + 1] = first[i] + (bx[2] - bx[0]) * (bx[3] - bx[1]);
    }
    // per camera: the binned Gaussians front to back, and their boxes in that order (read sequentially below)
    std::vector<std::vector<int32_t>> order(C), sorted_box(C);
    for (int64_t c = 0; c < C; ++c) {
        std::vector<std::pair<float, int32_t>> keys;
        for (int64_t n = 0; n < N; ++n)
            if (box[4 * (c * N + n) + 2] > 0) keys.emplace_back(pd[c * N + n], static_cast<int32_t>(n));
        sort_by_depth(keys);  // front to back, ties by id
        order[c].resize(keys.size());
        sorted_box[c].resize(4 * keys.size());
        for (size_t q = 0; q < keys.size(); ++q) {
            order[c][q] = keys[q].second;
            std::memcpy(&sorted_box[c][4 * q], &box[4 * (c * N + keys[q].second)], 4 * sizeof(int32_t));
        }
    }
    // visit(tile, n, r): every (Gaussian n, tile) of the tile rows [r0, r1), each tile's in front-to-back order;
    // r = first[c N + n] + the tile's number inside the Gaussian's box (row-major: tile order)
    auto band = [&](int64_t r0, int64_t r1, auto&& visit) {
        for (int64_t c = 0; c < C; ++c)
            for (size_t q = 0; q < order[c].size(); ++q) {
                const int32_t* bx = &sorted_box[c][4 * q];
                const int32_t n = order[c][q], y0 = std::max<int32_t>(bx[1], r0), y1 = std::min<int32_t>(bx[3], r1);
                const int32_t bw = bx[2] - bx[0], base = first[c * N + n];
                for (int32_t ty = y0; ty < y1; ++ty)
                    for (int32_t tx = bx[0]; tx < bx[2]; ++tx)
                        visit(c * T + ty * tw + tx, n, base + (ty - bx[1]) * bw + (tx - bx[0]));
            }
    };
    const int bands = static_cast<int>(std::min<int64_t>(nt, th));
#pragma omp parallel for schedule(static, 1) num_threads(bands)
    for (int b = 0; b < bands; ++b)
        band(th * b / bands, th * (b + 1) / bands, [&](int64_t tile, int32_t, int32_t) { counts[tile + 1]++; });
    for (int64_t k = 0; k < C * T; ++k) counts[k + 1] += counts[k];
    Tensor offsets = torch::from_blob(counts.data(), {C * T + 1}, torch::kInt32).clone();
    Tensor ids = torch::empty({static_cast<int64_t>(counts[C * T])}, torch::kInt32);
    Tensor rank_t = torch::empty({static_cast<int64_t>(counts[C * T])}, torch::kInt32);
    int32_t *pi = ids.data_ptr<int32_t>(), *rank = rank_t.data_ptr<int32_t>();
    std::vector<int32_t> fill(counts.begin(), counts.end() - 1);
#pragma omp parallel for schedule(static, 1) num_threads(bands)
    for (int b = 0; b < bands; ++b)
        band(th * b / bands, th * (b + 1) / bands, [&](int64_t tile, int32_t n, int32_t r) {
            const int32_t q = fill[tile]++;
            pi[q] = n;
            rank[q] = r;
        });
    return {offsets, ids, first_t, rank_t};
}

// ------------------------------------------------------------------------------------------------
// Compositing
// ------------------------------------------------------------------------------------------------
//
// A tile is processed row by row. For a pixel row, the entries of the tile list whose ellipse box crosses
// the row are visited front to back (each entry's data loaded once per row), and each visit updates all
// pixels of the row at once: `Lanes` (<= 16) independent per-pixel states in fixed-size arrays, written
// without branches so the compiler turns the lane loops into SIMD. Each pixel sees the entries in list
// order, so the result is gsplat's per-pixel loop. T is carried in float like gsplat's kernels; with
// -ffp-contract=off every path (forward, backward, pair collection) makes bit-identical decisions.

namespace {

constexpr int LANES = 16;  // pixels per row handled at once: tile_size <= 16 (gsplat's default)

// VW lanes as one value (GCC/Clang vector extensions): the row loops below are SIMD by construction. With
// AVX-512 a row of LANES pixels is one 16-lane vector (NH = 1), otherwise two 8-lane ones (NH = 2: with AVX2
// one instruction per operation, else two SSE ones).
#ifdef __AVX512F__
constexpr int VW = 16;
#else
constexpr int VW = 8;
#endif
constexpr int NH = LANES / VW;  // vectors per pixel row
typedef float fvec __attribute__((vector_size(4 * VW)));  // VW floats
typedef int32_t ivec __attribute__((vector_size(4 * VW)));

inline fvec splat(float v) { return fvec{} + v; }
inline ivec splat_i(int32_t v) { return ivec{} + v; }

// exp(x) for x <= 0: Cephes' expf polynomial after x = n ln 2 + r, n = round(x / ln 2); relative error ~1e-7.
inline fvec exp_neg(fvec x) {
    x = x < -87.0f ? splat(-87.0f) : x;
    x = x > 0.0f ? splat(0.0f) : x;
    const ivec n = __builtin_convertvector(x * 1.44269504088896341f - 0.5f, ivec);  // truncation: round for x <= 0
    const fvec fn = __builtin_convertvector(n, fvec);
    const fvec r = (x - fn * 0.693359375f) - fn * -2.12194440e-4f;
    // the degree-5 polynomial by Estrin's scheme: three short chains instead of Horner's one long one
    const fvec r2 = r * r;
    const fvec p45 = 1.9875691500e-4f * r + 1.3981999507e-3f, p23 = 8.3334519073e-3f * r + 4.1665795894e-2f;
    const fvec p01 = 1.6666665459e-1f * r + 5.0000001201e-1f;
    const fvec p = (p45 * r2 + p23) * r2 + p01;
    const fvec e = p * r2 + r + 1.0f;
    return e * (fvec)((n + 127) << 23);  // times 2^n (the exponent bits)
}

// alpha = min(0.999, o exp(-sigma)) (3DGS Eq. 3), or 0 where gsplat skips the pair (sigma < 0, alpha < 1/255)
// or sigma > lim (the compact box; lim = inf otherwise).
inline fvec pair_alpha(fvec sigma, float o, float lim) {
    fvec a = o * exp_neg(-sigma);
    a = a < MAX_ALPHA ? a : splat(MAX_ALPHA);
    const ivec ok = (sigma >= 0.0f) & (sigma <= lim) & (a >= ALPHA_THRESHOLD);
    return ok ? a : splat(0.0f);
}

// sigma = 0.5 d^T Q d (3DGS Eq. 4) at the eight pixel centres px of a row, d = mean - pixel centre
inline fvec pair_sigma(fvec dx, float dy, float qa, float qb, float qc) {
    return 0.5f * (qa * dx * dx + qc * dy * dy) + qb * dx * dy;
}

// Whether any lane of a comparison mask is set (one movemask with AVX).
inline bool any_lane(ivec m) {
#if defined(__AVX512F__)
    const __m512i v = reinterpret_cast<__m512i>(m);
    return _mm512_test_epi32_mask(v, v) != 0;
#elif defined(__AVX__)
    return _mm256_movemask_ps(_mm256_castsi256_ps(reinterpret_cast<__m256i>(m))) != 0;
#else
    bool any = false;
    for (int l = 0; l < VW; ++l) any |= m[l] != 0;
    return any;
#endif
}

inline float hsum(fvec v) {  // pairwise: lanes l and l + w, w = VW / 2, VW / 4, ..., 1
    for (int w = VW / 2; w >= 1; w /= 2)
        for (int l = 0; l < w; ++l) v[l] = v[l] + v[l + w];
    return v[0];
}

// What every tile that lists a (camera, Gaussian) reads, computed once per call: one record of R floats (one
// 64-byte line for RGB), so gathering a tile's list costs one line per entry and no transcendental.
//   [0] m_x  [1] m_y  [2..4] conic q_a q_b q_c  [5] opacity o  [6] sigma limit (see pair_alpha)
//   [7] first, [8] last pixel column of the ellipse box sigma <= ln(255 o) (conservative by a pixel; -inf / inf
//   when the conic is degenerate)  [9] its y extent: pixel-centre rows |m_y - p_y| <= [9]  [10], [11] the pixel
//   rows that extent may reach, a row or so wider on each side (-inf / inf when not finite)  [12..] features (D)
constexpr int64_t REC_FEATS = 12;

struct SplatRecords {
    std::vector<float> buf;  // rec: buf from its first 64-byte boundary (a record is then whole cache lines)
    float* rec = nullptr;
    int64_t R = 16, D = 0;

    // means2d [C N, 2], conics [C N, 3], opacities [C N], feats [C N, D] or nullptr (no feature columns)
    void build(const float* m2, const float* cn, const float* op, const float* fe, int64_t CN, int64_t D_, float beta,
               int nt) {
        D = fe ? D_ : 0;
        R = (REC_FEATS + D + 15) / 16 * 16;
        buf.resize(CN * R + 16);
        rec = buf.data() + (16 - (reinterpret_cast<uintptr_t>(buf.data()) / sizeof(float)) % 16) % 16;
        float* out = rec;
        const int64_t R_ = R, Df = D;
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t i = 0; i < CN; ++i) {
            float* r = out + i * R_;
            const float mx = m2[2 * i], my = m2[2 * i + 1], qa = cn[3 * i], qb = cn[3 * i + 1], qc = cn[3 * i + 2];
            const float o = op[i];
            const float l = std::log(255.0f * o);  // alpha >= 1/255 needs sigma <= ln(255 o)
            const float lim = beta < 1.0f ? beta * l : INFINITY;  // FastGS compact box: sigma <= beta ln(255 o)
            // ellipse 0.5 d^T Q d <= L (L with slack for rounding): half extents sqrt(2 L q_c / det Q) in x,
            // sqrt(2 L q_a / det Q) in y
            const double L = std::max(std::min(double(l), double(lim)), 0.0) * (1 + 1e-4) + 1e-3;
            const double det = double(qa) * qc - double(qb) * qb;
            double xl = -INFINITY, xh = INFINITY, ey = INFINITY;
            if (det > 0 && qa > 0 && qc > 0 && std::isfinite(det)) {
                const double ex = std::sqrt(2 * L * qc / det);
                ey = std::sqrt(2 * L * qa / det) * (1 + 1e-5) + 1e-3;
                xl = std::floor(mx - ex - 0.5) - 1;  // pixel x = p_x - 0.5
                xh = std::ceil(mx + ex - 0.5) + 1;
            }
            r[0] = mx; r[1] = my; r[2] = qa; r[3] = qb; r[4] = qc; r[5] = o; r[6] = lim;
            r[7] = static_cast<float>(xl); r[8] = static_cast<float>(xh); r[9] = static_cast<float>(ey);
            const bool finite = std::isfinite(static_cast<float>(ey)) && std::isfinite(my);
            r[10] = finite ? static_cast<float>(std::floor(double(my) - r[9] - 0.5) - 1.0) : -INFINITY;
            r[11] = finite ? static_cast<float>(std::ceil(double(my) - 0.5 + r[9]) + 1.0) : INFINITY;
            for (int64_t d = 0; d < Df; ++d) r[REC_FEATS + d] = fe[i * Df + d];
        }
    }
    const float* at(int64_t i) const { return rec + i * R; }
};

// One tile of one camera: its camera c, its list [n0, n0 + k), its pixels [x0, x1) x [y0, y1), n = x1 - x0.
struct Tile {
    int64_t c, n0, k, x0, x1, n, y0, y1;
};

// One tile's Gaussians, gathered in list order (contiguous for the row loops).
struct TileGaussians {
    std::vector<float> mx, my, qa, qb, qc, o, lim;  // lim: sigma limit (see pair_alpha)
    std::vector<int32_t> id;
    // Bounding box of each entry's ellipse: pixel columns [x_lo, x_hi] (clipped to the tile) and pixel-centre
    // rows |m_y - p_y| <= y_ext; exact tests follow.
    std::vector<int32_t> x_lo, x_hi;
    std::vector<float> y_ext;
    std::vector<float> feats;  // [k, D] in list order, when the records hold features
    std::vector<int32_t> row_lo, row_hi;  // tile rows r0..r1 each entry's box may cross (r1 < r0: none)
    // per pixel row r of the tile: the entries whose box crosses it, in list order: row_buf[r k, r k + row_n[r])
    std::vector<int32_t> row_buf;
    int32_t row_n[LANES] = {};
    struct Span {
        const int32_t *b, *e;
        const int32_t* begin() const { return b; }
        const int32_t* end() const { return e; }
    };
    Span rows_j(int64_t r) const { const int32_t* b = row_buf.data() + r * id.size(); return {b, b + row_n[r]}; }

    // Tile tl's list (ids of camera tl.c, whose records start at tl.c * N), clipped to its columns and rows.
    void gather(const SplatRecords& sr, const int32_t* ids, const Tile& tl, int64_t N) {
        const int64_t k = tl.k, n0 = tl.n0, cam_base = tl.c * N, x0 = tl.x0, x1 = tl.x1, y0 = tl.y0;
        const int64_t rows = tl.y1 - tl.y0, D = sr.D;
        for (auto* v : {&mx, &my, &qa, &qb, &qc, &o, &lim, &y_ext}) v->resize(k);
        for (auto* v : {&id, &x_lo, &x_hi, &row_lo, &row_hi}) v->resize(k);
        feats.resize(k * D);
        const float lo_tile = static_cast<float>(x0), hi_tile = static_cast<float>(x1 - 1);
        const float top = static_cast<float>(y0), last = static_cast<float>(rows - 1);
        for (int64_t j = 0; j < k; ++j) {
            if (j + 8 < k) __builtin_prefetch(sr.at(cam_base + ids[n0 + j + 8]));
            const int32_t g = ids[n0 + j];
            const float* r = sr.at(cam_base + g);
            id[j] = g;
            mx[j] = r[0]; my[j] = r[1];
            qa[j] = r[2]; qb[j] = r[3]; qc[j] = r[4];
            o[j] = r[5];
            lim[j] = r[6];
            const float lo = std::max(lo_tile, r[7]), hi = std::min(hi_tile, r[8]);  // NaN bounds: the tile's
            x_lo[j] = static_cast<int32_t>(std::max(lo, -1.0f));
            x_hi[j] = static_cast<int32_t>(std::max(hi, -2.0f));
            y_ext[j] = r[9];
            const float lo_r = r[10] - top, hi_r = r[11] - top;  // clamped as floats before the casts
            row_lo[j] = lo_r <= 0.0f ? 0 : (lo_r >= last + 1 ? static_cast<int32_t>(rows) : static_cast<int32_t>(lo_r));
            row_hi[j] = x_lo[j] > x_hi[j] ? -1 : (hi_r >= last ? static_cast<int32_t>(rows - 1) : (hi_r < 0.0f ? -1 : static_cast<int32_t>(hi_r)));
            for (int64_t d = 0; d < D; ++d) feats[j * D + d] = r[REC_FEATS + d];
        }
    }

    // rows_j for tile tl's pixel rows, from each entry's y extent: the rows it can reach (row_lo .. row_hi), then
    // the exact test (|m_y - p_y| <= y_ext, a column in the tile) row by row
    void build_rows(const Tile& tl) {
        const int64_t y0 = tl.y0, rows = tl.y1 - tl.y0;
        const int64_t k = static_cast<int64_t>(id.size());
        row_buf.resize(rows * k);
        int32_t* buf = row_buf.data();
        for (int64_t r = 0; r < rows; ++r) row_n[r] = 0;
        for (int64_t j = 0; j < k; ++j)
            for (int64_t r = row_lo[j]; r <= row_hi[j]; ++r) {
                buf[r * k + row_n[r]] = static_cast<int32_t>(j);
                row_n[r] += crosses_row(j, static_cast<float>(y0 + r) + 0.5f);
            }
    }

    // The exact test: the row of pixel centres at py is within the box's y extent.
    bool crosses_row(int64_t j, float py) const { return std::fabs(my[j] - py) <= y_ext[j]; }
};

struct Grid {
    int64_t C, N, W, H, ts, tw, th, T;
    Grid(int64_t C_, int64_t N_, int64_t W_, int64_t H_, int64_t ts_) : C(C_), N(N_), W(W_), H(H_), ts(ts_) {
        tw = (W + ts - 1) / ts;
        th = (H + ts - 1) / ts;
        T = tw * th;
    }
    // Tile ct of the camera-major tile order, with the list offsets of bin_tiles.
    Tile tile(int64_t ct, const int32_t* off) const {
        const int64_t t = ct % T, x0 = (t % tw) * ts, y0 = (t / tw) * ts;
        return {ct / T, off[ct], off[ct + 1] - off[ct], x0, std::min(x0 + ts, W), std::min(x0 + ts, W) - x0,
                y0, std::min(y0 + ts, H)};
    }
};

// Front-to-back state of one pixel row (lanes i < n are pixels x0 + i), NH vectors ("halves" when NH = 2).
struct RowFwd {
    fvec T[NH], a[NH], w[NH], tb[NH], px[NH];
    ivec end[NH], live[NH];
    int64_t x0 = 0;

    void start(int64_t x0_, int64_t n) {
        x0 = x0_;
        for (int h = 0; h < NH; ++h)
            for (int l = 0; l < VW; ++l) {
                const int i = h * VW + l;
                T[h][l] = 1.0f;
                end[h][l] = 0;
                live[h][l] = i < n ? -1 : 0;
                px[h][l] = static_cast<float>(x0 + i) + 0.5f;
            }
    }
    float lane(const fvec* v, int i) const { return v[i / VW][i % VW]; }

    // Composite entry j into every live pixel: a = its alpha where composited (else 0), w = a T, tb = T
    // before. Returns whether a pixel is still live (gsplat's exclusive stop T (1 - alpha) <= 1e-4 ends one).
    inline bool step(const TileGaussians& tg, int32_t j, float py) {
        const float mx = tg.mx[j], dy = tg.my[j] - py;
        ivec alive = splat_i(0);
        const int h0 = NH > 1 && tg.x_lo[j] - x0 >= VW, h1 = NH > 1 && tg.x_hi[j] - x0 >= VW;  // halves the box spans
        for (int h = 0; h < NH; ++h) {
            if (h < h0 || h > h1) {  // no pixel of this half can composite the entry
                a[h] = splat(0.0f);
                w[h] = splat(0.0f);
                tb[h] = T[h];
                alive |= live[h];
                continue;
            }
            const fvec sigma = pair_sigma(mx - px[h], dy, tg.qa[j], tg.qb[j], tg.qc[j]);
            const fvec al = live[h] ? pair_alpha(sigma, tg.o[j], tg.lim[j]) : splat(0.0f);
            const fvec next_T = T[h] * (1.0f - al);
            const ivec stop = (al > 0.0f) & (next_T <= T_MIN);
            const ivec hit = (al > 0.0f) & ~stop;
            a[h] = hit ? al : splat(0.0f);
            w[h] = hit ? al * T[h] : splat(0.0f);
            tb[h] = T[h];
            T[h] = hit ? next_T : T[h];
            end[h] = hit ? splat_i(j + 1) : end[h];
            live[h] = stop ? splat_i(0) : live[h];
            alive |= live[h];
        }
        return any_lane(alive);
    }
};

// Walk one pixel row front to back; visit(i, j, alpha, T_before) for each composited pair.
template <typename Visit>
inline void walk_row(const TileGaussians& tg, int64_t r, RowFwd& row, int64_t x0, int64_t n, float py, Visit&& visit) {
    row.start(x0, n);
    for (const int32_t j : tg.rows_j(r)) {
        const bool alive = row.step(tg, j, py);
        for (int i = 0; i < n; ++i)
            if (row.lane(row.a, i) > 0.0f) visit(i, j, row.lane(row.a, i), row.lane(row.tb, i));
        if (!alive) break;
    }
}

void check_tile_size(int64_t tile_size) {
    TORCH_CHECK(tile_size >= 1 && tile_size <= LANES, "the compiled CPU rasterizer takes tile_size 1..", LANES);
}

}  // namespace

// -> colors [C, H, W, D], alphas [C, H, W, 1], T_final [C, H, W] float, ends [C, H, W] int32
std::vector<Tensor> raster_fwd(Tensor means2d, Tensor conics, Tensor opac, Tensor feats, Tensor backgrounds,
                               Tensor tile_offsets, Tensor tile_ids, int64_t width, int64_t height,
                               int64_t tile_size, double compact_box, int64_t threads) {
    check(means2d, "means2d");
    check(conics, "conics");
    check(opac, "opacities");
    check(feats, "colors");
    check_tile_size(tile_size);
    const int64_t C = means2d.size(0), N = means2d.size(1), D = feats.size(2);
    const bool has_bg = backgrounds.numel() > 0;
    if (has_bg) check(backgrounds, "backgrounds");
    Grid gr(C, N, width, height, tile_size);
    auto f32 = means2d.options();
    Tensor out = torch::empty({C, height, width, D}, f32), alphas = torch::empty({C, height, width, 1}, f32);
    Tensor Tfin = torch::empty({C, height, width}, f32);
    Tensor ends = torch::empty({C, height, width}, f32.dtype(torch::kInt32));
    const float *m2 = means2d.data_ptr<float>(), *cn = conics.data_ptr<float>(), *op = opac.data_ptr<float>();
    const float* fe = feats.data_ptr<float>();
    const float* bg = has_bg ? backgrounds.data_ptr<float>() : nullptr;
    const int32_t *off = tile_offsets.data_ptr<int32_t>(), *ids = tile_ids.data_ptr<int32_t>();
    float *po = out.data_ptr<float>(), *pa = alphas.data_ptr<float>(), *pt = Tfin.data_ptr<float>();
    int32_t* pe = ends.data_ptr<int32_t>();
    SplatRecords sr;
    sr.build(m2, cn, op, fe, C * N, D, static_cast<float>(compact_box), threads_or_one(threads));

#pragma omp parallel num_threads(threads_or_one(threads))
    {
        TileGaussians tg;
        RowFwd row;
        std::vector<fvec> acc(NH * D);  // [D, NH]
        const std::vector<float>& fl = tg.feats;  // the tile's features, list order [k, D]
#pragma omp for schedule(dynamic, 1)
        for (int64_t ct = 0; ct < C * gr.T; ++ct) {
            const Tile tl = gr.tile(ct, off);
            const int64_t c = tl.c, x0 = tl.x0, n = tl.n;
            tg.gather(sr, ids, tl, N);
            tg.build_rows(tl);
            for (int64_t y = tl.y0; y < tl.y1; ++y) {
                const float py = y + 0.5f;
                row.start(x0, n);
                std::fill(acc.begin(), acc.end(), splat(0.0f));
                for (const int32_t j : tg.rows_j(y - tl.y0)) {
                    const bool alive = row.step(tg, j, py);
                    for (int64_t d = 0; d < D; ++d) {  // C += w c (3DGS Eq. 3)
                        const float f = fl[j * D + d];
                        for (int h = 0; h < NH; ++h) acc[NH * d + h] += row.w[h] * f;
                    }
                    if (!alive) break;
                }
                for (int64_t i = 0; i < n; ++i) {
                    const int64_t p = (c * height + y) * width + x0 + i;
                    const float T = row.lane(row.T, i);
                    for (int64_t d = 0; d < D; ++d)
                        po[p * D + d] = acc[NH * d + i / VW][i % VW] + (bg ? T * bg[c * D + d] : 0.0f);
                    pa[p] = 1.0f - T;
                    pt[p] = T;
                    pe[p] = row.end[i / VW][i % VW];
                }
            }
        }
    }
    return {out, alphas, Tfin, ends};
}

// Gradients of raster_fwd -> v_means2d [C, N, 2], v_conics [C, N, 3], v_opac [C, N], v_feats [C, N, D],
// v_backgrounds [C, D] (empty without), absgrad [C, N, 2] (empty unless asked): gsplat's back-to-front pass.
std::vector<Tensor> raster_bwd(Tensor means2d, Tensor conics, Tensor opac, Tensor feats, Tensor backgrounds,
                               Tensor tile_offsets, Tensor tile_ids, Tensor tile_first, Tensor tile_rank,
                               Tensor Tfin, Tensor ends, Tensor v_out,
                               Tensor v_alpha, Tensor hit_weights, bool weight_max, int64_t width,
                               int64_t height, int64_t tile_size, double compact_box, bool absgrad,
                               int64_t threads) {
    check(v_out, "v_colors");
    check(v_alpha, "v_alphas");
    check_tile_size(tile_size);
    const int64_t C = means2d.size(0), N = means2d.size(1), D = feats.size(2);
    const bool has_bg = backgrounds.numel() > 0;
    // hit_weights [C, H, W] (empty: none): also return hits [C, N] = sum of the weights of the pixels each
    // Gaussian is composited into (contribution_stats' hit_count, counted on the backward's own pass); weight_max:
    // also return w_max [C, N] = max over its pixels of alpha T (contribution_stats' weight_max)
    const bool has_w = hit_weights.numel() > 0;
    if (has_w) {
        check(hit_weights, "hit_weights");
        TORCH_CHECK(hit_weights.numel() == C * height * width, "hit_weights must be [C, H, W]");
    }
    const float* hw = has_w ? hit_weights.data_ptr<float>() : nullptr;
    Grid gr(C, N, width, height, tile_size);
    const float *m2 = means2d.data_ptr<float>(), *cn = conics.data_ptr<float>(), *op = opac.data_ptr<float>();
    const float* fe = feats.data_ptr<float>();
    const float* bg = has_bg ? backgrounds.data_ptr<float>() : nullptr;
    const int32_t *off = tile_offsets.data_ptr<int32_t>(), *ids = tile_ids.data_ptr<int32_t>();
    const float *pt = Tfin.data_ptr<float>(), *gv = v_out.data_ptr<float>(), *ga = v_alpha.data_ptr<float>();
    const int32_t* pe = ends.data_ptr<int32_t>();
    const int32_t *first = tile_first.data_ptr<int32_t>(), *rank = tile_rank.data_ptr<int32_t>();
    TORCH_CHECK(tile_first.numel() == C * N + 1 && tile_rank.numel() == tile_ids.numel(), "bin_tiles' first / rank");
    const int nt = threads_or_one(threads);
    SplatRecords sr;
    sr.build(m2, cn, op, fe, C * N, D, static_cast<float>(compact_box), nt);
    // per tile entry (camera, tile, Gaussian): sums over the tile's pixels of u, u dx, u dy, u dx^2, u dx dy,
    // u dy^2 (u = alpha dL/dalpha), |v_mean2d| x, y, the colour gradient and (with hit_weights) the weighted
    // hits, stored in (camera, Gaussian) order (bin_tiles' rank) and reduced per Gaussian at the end, in tile order
    const int64_t HIT = 8 + D, WMAX = HIT + (has_w ? 1 : 0), S = WMAX + (weight_max ? 1 : 0), I = tile_ids.numel();
    std::vector<float> isect(I * S);  // float: each value is a float hsum, so this is exact
    std::vector<double> v_bg(has_bg ? C * D : 0, 0.0);

#pragma omp parallel num_threads(nt)
    {
        std::vector<double> my_bg(has_bg ? C * D : 0, 0.0);
        TileGaussians tg;
        const std::vector<float>& fl = tg.feats;
        // the whole tile's per-pixel state, [row][half] (g: [row][d][half]): entries are walked back to front
        // once per tile, each over the rows its box crosses, so its sums stay in registers across those rows
        std::vector<fvec> T(NH * LANES), tail(NH * LANES), behind(NH * LANES), g(NH * LANES * D), colour(D);
        std::vector<fvec> wt(has_w ? NH * LANES : 0);  // the pixels' hit weights
        std::vector<ivec> end(NH * LANES);
        std::vector<int32_t> row_end(LANES);  // per row: entries from here on composite none of its pixels
        fvec px[NH];
        for (int i = 0; i < LANES; ++i) px[i / VW][i % VW] = 0.0f;
#pragma omp for schedule(dynamic, 1)
        for (int64_t ct = 0; ct < C * gr.T; ++ct) {
            const Tile tl = gr.tile(ct, off);
            const int64_t c = tl.c, n0 = tl.n0, k = tl.k, x0 = tl.x0, n = tl.n, rows = tl.y1 - tl.y0;
            tg.gather(sr, ids, tl, N);
            const int32_t* tile_rank = rank + n0;  // where the tile's entries' sums go
            int32_t tile_end = 0;
            for (int i = 0; i < LANES; ++i) px[i / VW][i % VW] = static_cast<float>(x0 + i) + 0.5f;
            for (int64_t r = 0; r < rows; ++r) {  // per pixel: T from T_final, tail, dL/dC
                const int64_t y = tl.y0 + r;
                int32_t max_end = 0;
                for (int i = 0; i < LANES; ++i) {
                    const int h = i / VW, l = i % VW, rh = NH * r + h;
                    behind[rh][l] = 0.0f;  // sum over later entries of w c . dL/dC
                    if (i >= n) {
                        T[rh][l] = 1.0f; tail[rh][l] = 0.0f; end[rh][l] = 0;
                        if (has_w) wt[rh][l] = 0.0f;
                        for (int64_t d = 0; d < D; ++d) g[(r * D + d) * NH + h][l] = 0.0f;
                        continue;
                    }
                    const int64_t p = (c * height + y) * width + x0 + i;
                    if (has_w) wt[rh][l] = hw[p];
                    const float Tf = pt[p];
                    float tl_ = ga[p];  // (dL/dA - bg . dL/dC) T_final
                    for (int64_t d = 0; d < D; ++d) {
                        const float gd = gv[p * D + d];
                        g[(r * D + d) * NH + h][l] = gd;
                        if (bg) {
                            tl_ -= gd * bg[c * D + d];
                            my_bg[c * D + d] += Tf * gd;
                        }
                    }
                    tail[rh][l] = tl_ * Tf;
                    T[rh][l] = Tf;
                    end[rh][l] = pe[p];
                    max_end = std::max(max_end, pe[p]);
                }
                row_end[r] = max_end;
                tile_end = std::max(tile_end, max_end);
            }
            for (int64_t j = k - 1; j >= tile_end; --j)  // behind every pixel's last composited entry
                std::fill(&isect[tile_rank[j] * int64_t(S)], &isect[(tile_rank[j] + 1) * int64_t(S)], 0.0f);
            // the entries, back to front; the colour width as a constant for RGB (registers, unrolled loops)
            auto entries = [&](auto width) {
                constexpr int64_t DC = decltype(width)::value;  // 0: D known only at run time
                const int64_t Dn = DC > 0 ? DC : D;
                fvec colour_fixed[DC > 0 ? DC : 1];
                fvec* colour_p = DC > 0 ? colour_fixed : colour.data();
                for (int64_t j = tile_end - 1; j >= 0; --j) {  // back to front
                    fvec q_sum[8] = {}, hits = {}, wmax = {};
                    std::fill(colour_p, colour_p + Dn, splat(0.0f));
                    const float mx = tg.mx[j], my = tg.my[j], qa = tg.qa[j], qb = tg.qb[j], qc = tg.qc[j];
                    const int64_t r0 = tg.row_lo[j], r1 = tg.row_hi[j];
                    const int h0 = NH > 1 && tg.x_lo[j] - x0 >= VW, h1 = NH > 1 && tg.x_hi[j] - x0 >= VW;
                    for (int64_t r = r0; r <= r1; ++r) {
                        const float py = static_cast<float>(tl.y0 + r) + 0.5f;
                        if (j >= row_end[r] || !tg.crosses_row(j, py)) continue;
                        const float dy = my - py;
                        fvec dx[NH], al[NH];
                        bool hit[NH] = {};
                        for (int h = h0; h <= h1; ++h) {
                            dx[h] = mx - px[h];
                            const fvec sigma = pair_sigma(dx[h], dy, qa, qb, qc);
                            al[h] = static_cast<int32_t>(j) < end[NH * r + h] ? pair_alpha(sigma, tg.o[j], tg.lim[j]) : splat(0.0f);
                            hit[h] = any_lane(al[h] > 0.0f);
                        }
                        bool any_hit = false;
                        for (int h = h0; h <= h1; ++h) any_hit |= hit[h];
                        if (!any_hit) continue;  // the entry composites no pixel of this row
                        fvec q[8] = {}, w[NH] = {};
                        for (int h = h0; h <= h1; ++h) {
                            if (!hit[h]) continue;  // alpha 0 in every lane of this half: nothing changes
                            const int rh = NH * r + h;
                            fvec cg = splat(0.0f);  // c . dL/dC
                            for (int64_t d = 0; d < Dn; ++d) cg += fl[j * Dn + d] * g[(r * Dn + d) * NH + h];
                            const fvec inv = 1.0f / (1.0f - al[h]);
                            T[rh] = T[rh] * inv;  // T before entry j
                            w[h] = al[h] * T[rh];
                            // dC/dalpha = T c - behind / (1 - alpha), dA/dalpha = T_final / (1 - alpha)
                            const fvec v_a = T[rh] * cg + (tail[rh] - behind[rh]) * inv;
                            behind[rh] += w[h] * cg;
                            const fvec u = al[h] < MAX_ALPHA ? al[h] * v_a : splat(0.0f);  // clamped alpha: no gradient
                            const fvec ux = u * dx[h], uy = u * dy;
                            const fvec gx = qa * ux + qb * uy, gy = qb * ux + qc * uy;
                            q[0] += u; q[1] += ux; q[2] += uy;
                            q[3] += ux * dx[h]; q[4] += ux * dy; q[5] += uy * dy;
                            q[6] += gx < 0.0f ? -gx : gx;  // AbsGS: |per-pixel dL/dmeans2d|
                            q[7] += gy < 0.0f ? -gy : gy;
                            if (has_w) hits += al[h] > 0.0f ? wt[rh] : splat(0.0f);  // composited here
                            if (weight_max) wmax = wmax > w[h] ? wmax : w[h];  // w = 0 where not composited
                        }
                        for (int m = 0; m < 8; ++m) q_sum[m] += q[m];
                        for (int64_t d = 0; d < Dn; ++d) {
                            fvec wg = w[0] * g[(r * Dn + d) * NH];
                            for (int h = 1; h < NH; ++h) wg = wg + w[h] * g[(r * Dn + d) * NH + h];
                            colour_p[d] += wg;
                        }
                    }
                    float* acc = &isect[tile_rank[j] * int64_t(S)];
                    for (int m = 0; m < 8; ++m) acc[m] = hsum(q_sum[m]);
                    for (int64_t d = 0; d < Dn; ++d) acc[8 + d] = hsum(colour_p[d]);
                    if (has_w) acc[HIT] = hsum(hits);
                    if (weight_max) {
                        float m = 0.0f;
                        for (int l = 0; l < VW; ++l) m = std::max(m, wmax[l]);
                        acc[WMAX] = m;
                    }
                }
            };
            if (D == 3)
                entries(std::integral_constant<int64_t, 3>{});
            else
                entries(std::integral_constant<int64_t, 0>{});
        }
#pragma omp critical
        for (size_t k2 = 0; k2 < my_bg.size(); ++k2) v_bg[k2] += my_bg[k2];
    }
    auto f32 = means2d.options();
    Tensor v_means2d = torch::empty({C, N, 2}, f32), v_conics = torch::empty({C, N, 3}, f32);
    Tensor v_opac = torch::empty({C, N}, f32), v_feats = torch::empty({C, N, D}, f32);
    Tensor v_abs = absgrad ? torch::empty({C, N, 2}, f32) : torch::zeros({0}, f32);
    float *vm = v_means2d.data_ptr<float>(), *vc = v_conics.data_ptr<float>(), *vo = v_opac.data_ptr<float>();
    float *vf = v_feats.data_ptr<float>(), *va = absgrad ? v_abs.data_ptr<float>() : nullptr;
    Tensor hits_out = has_w ? torch::empty({C, N}, f32) : torch::zeros({0}, f32);
    float* vh = has_w ? hits_out.data_ptr<float>() : nullptr;
    Tensor wmax_out = weight_max ? torch::empty({C, N}, f32) : torch::zeros({0}, f32);
    float* vw = weight_max ? wmax_out.data_ptr<float>() : nullptr;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t i = 0; i < C * N; ++i) {
        std::vector<double> big;
        double r[64];
        double* rr = S <= 64 ? r : (big.resize(S), big.data());
        std::fill(rr, rr + S, 0.0);
        for (int64_t q = first[i]; q < first[i + 1]; ++q) {
            const float* src = &isect[q * S];
            for (int64_t k2 = 0; k2 < WMAX; ++k2) rr[k2] += src[k2];
            if (vw) rr[WMAX] = std::max(rr[WMAX], static_cast<double>(src[WMAX]));
        }
        const double qa = cn[3 * i], qb = cn[3 * i + 1], qc = cn[3 * i + 2];
        vm[2 * i] = static_cast<float>(-(qa * rr[1] + qb * rr[2]));  // dsigma/dmean = Q d
        vm[2 * i + 1] = static_cast<float>(-(qb * rr[1] + qc * rr[2]));
        vc[3 * i] = static_cast<float>(-0.5 * rr[3]);  // dsigma/dQ
        vc[3 * i + 1] = static_cast<float>(-rr[4]);
        vc[3 * i + 2] = static_cast<float>(-0.5 * rr[5]);
        vo[i] = static_cast<float>(rr[0] / std::max(static_cast<double>(op[i]), 1e-30));
        if (va) { va[2 * i] = static_cast<float>(rr[6]); va[2 * i + 1] = static_cast<float>(rr[7]); }
        for (int64_t d = 0; d < D; ++d) vf[i * D + d] = static_cast<float>(rr[8 + d]);
        if (vh) vh[i] = static_cast<float>(rr[HIT]);
        if (vw) vw[i] = static_cast<float>(rr[WMAX]);
    }
    Tensor v_background = has_bg ? torch::empty({C, D}, f32) : torch::zeros({0}, f32);
    for (size_t k2 = 0; k2 < v_bg.size(); ++k2) v_background.data_ptr<float>()[k2] = static_cast<float>(v_bg[k2]);
    return {v_means2d, v_conics, v_opac, v_feats, v_background, v_abs, hits_out, wmax_out};
}

// Every composited pair, sorted by (camera, pixel, depth) -> gaussian_ids [P] int64, pixel_ids [P] int64
// (y W + x), camera_ids [P] int64, alphas [P], transmittances [P] (T before), T_final [C, H W],
// pixel_starts [C H W + 1] int64.
std::vector<Tensor> collect_pairs(Tensor means2d, Tensor conics, Tensor opac, Tensor tile_offsets,
                                  Tensor tile_ids, int64_t width, int64_t height, int64_t tile_size,
                                  double compact_box, int64_t threads) {
    check(means2d, "means2d");
    check(conics, "conics");
    check(opac, "opacities");
    check_tile_size(tile_size);
    const int64_t C = means2d.size(0), N = means2d.size(1), HW = width * height;
    Grid gr(C, N, width, height, tile_size);
    const float *m2 = means2d.data_ptr<float>(), *cn = conics.data_ptr<float>(), *op = opac.data_ptr<float>();
    const int32_t *off = tile_offsets.data_ptr<int32_t>(), *ids = tile_ids.data_ptr<int32_t>();
    const int nt = threads_or_one(threads);
    SplatRecords sr;
    sr.build(m2, cn, op, nullptr, C * N, 0, static_cast<float>(compact_box), nt);
    Tensor starts = torch::zeros({C * HW + 1}, torch::kInt64);
    Tensor Tfin = torch::empty({C, HW}, torch::kFloat32);
    int64_t* ps = starts.data_ptr<int64_t>();
    float* pt = Tfin.data_ptr<float>();
    // pass 1: pairs per pixel
#pragma omp parallel num_threads(nt)
    {
        TileGaussians tg;
        RowFwd row;
#pragma omp for schedule(dynamic, 1)
        for (int64_t ct = 0; ct < C * gr.T; ++ct) {
            const Tile tl = gr.tile(ct, off);
            const int64_t c = tl.c, x0 = tl.x0, n = tl.n;
            tg.gather(sr, ids, tl, N);
            tg.build_rows(tl);
            for (int64_t y = tl.y0; y < tl.y1; ++y) {
                const int64_t base = c * HW + y * width + x0;
                for (int64_t i = 0; i < n; ++i) ps[base + i + 1] = 0;
                walk_row(tg, y - tl.y0, row, x0, n, y + 0.5f, [&](int64_t i, int64_t, float, float) { ++ps[base + i + 1]; });
                for (int64_t i = 0; i < n; ++i) pt[base + i] = row.lane(row.T, i);
            }
        }
    }
    for (int64_t p = 0; p < C * HW; ++p) ps[p + 1] += ps[p];
    const int64_t P = ps[C * HW];
    Tensor gid = torch::empty({P}, torch::kInt64), pid = torch::empty({P}, torch::kInt64);
    Tensor cid = torch::empty({P}, torch::kInt64);
    Tensor al = torch::empty({P}, torch::kFloat32), tr = torch::empty({P}, torch::kFloat32);
    int64_t *pg = gid.data_ptr<int64_t>(), *pp = pid.data_ptr<int64_t>(), *pc = cid.data_ptr<int64_t>();
    float *pa = al.data_ptr<float>(), *ptr = tr.data_ptr<float>();
    // pass 2: fill
#pragma omp parallel num_threads(nt)
    {
        TileGaussians tg;
        RowFwd row;
        std::vector<int64_t> cursor(LANES);
#pragma omp for schedule(dynamic, 1)
        for (int64_t ct = 0; ct < C * gr.T; ++ct) {
            const Tile tl = gr.tile(ct, off);
            const int64_t c = tl.c, x0 = tl.x0, n = tl.n;
            tg.gather(sr, ids, tl, N);
            tg.build_rows(tl);
            for (int64_t y = tl.y0; y < tl.y1; ++y) {
                const int64_t pix0 = y * width + x0;
                for (int64_t i = 0; i < n; ++i) cursor[i] = ps[c * HW + pix0 + i];
                walk_row(tg, y - tl.y0, row, x0, n, y + 0.5f, [&](int64_t i, int64_t j, float a, float Tb) {
                    const int64_t q = cursor[i]++;
                    pg[q] = tg.id[j];
                    pp[q] = pix0 + i;
                    pc[q] = c;
                    pa[q] = a;
                    ptr[q] = Tb;
                });
            }
        }
    }
    return {gid, pid, cid, al, tr, Tfin, starts};
}

// The per-Gaussian contribution statistics of gspruner/render/stats.py without building the pairs: for each
// composited pair (Gaussian i, pixel p) with w = alpha T and pixel weight m_p (1 without weights [C, H W]),
//   [0] weight_sum = sum m w, [1] weight_max = max m w, [2] hit_count = sum m, [3] trans_sum = sum m T,
//   [4] max_count = sum of m over the pixels where i has the largest w (the front-most one on ties),
// per camera -> [5, C, N]. Each tile entry keeps its own sums (stored in Gaussian order, as raster_bwd's),
// reduced per (camera, Gaussian) in tile order: the result does not depend on the threads. Rows whose
// weights are all zero add nothing and are skipped (FastGS's masked counts are [2] with 0/1 weights).
Tensor contribution_stats(Tensor means2d, Tensor conics, Tensor opac, Tensor tile_offsets, Tensor tile_ids,
                          Tensor first_t, Tensor rank_t, Tensor weights, int64_t width, int64_t height,
                          int64_t tile_size, double compact_box, int64_t threads) {
    check(means2d, "means2d");
    check(conics, "conics");
    check(opac, "opacities");
    check_tile_size(tile_size);
    const int64_t C = means2d.size(0), N = means2d.size(1), HW = width * height;
    const bool has_w = weights.numel() > 0;
    if (has_w) {
        check(weights, "weights");
        TORCH_CHECK(weights.numel() == C * HW, "weights must hold C x H x W values");
    }
    Grid gr(C, N, width, height, tile_size);
    const float *m2 = means2d.data_ptr<float>(), *cn = conics.data_ptr<float>(), *op = opac.data_ptr<float>();
    const float* pw = has_w ? weights.data_ptr<float>() : nullptr;
    const int32_t *off = tile_offsets.data_ptr<int32_t>(), *ids = tile_ids.data_ptr<int32_t>();
    const int32_t *first = first_t.data_ptr<int32_t>(), *rank = rank_t.data_ptr<int32_t>();
    const int64_t I = tile_ids.numel();
    constexpr int64_t S = 5;
    const int nt = threads_or_one(threads);
    SplatRecords sr;
    sr.build(m2, cn, op, nullptr, C * N, 0, static_cast<float>(compact_box), nt);
    std::vector<float> entry(I * S, 0.0f);  // [I, S] in Gaussian order (rank)
    float* es = entry.data();
#pragma omp parallel num_threads(nt)
    {
        TileGaussians tg;
        RowFwd row;
        float best_w[LANES], ones[LANES];
        int32_t best_j[LANES];
        for (int i = 0; i < LANES; ++i) ones[i] = 1.0f;
#pragma omp for schedule(dynamic, 1)
        for (int64_t ct = 0; ct < C * gr.T; ++ct) {
            const Tile tl = gr.tile(ct, off);
            const int64_t c = tl.c, x0 = tl.x0, n = tl.n;
            if (tl.k == 0) continue;
            bool gathered = false;
            for (int64_t y = tl.y0; y < tl.y1; ++y) {
                const float* m = has_w ? pw + c * HW + y * width + x0 : ones;
                bool row_any = false;
                for (int64_t i = 0; i < n; ++i) row_any |= m[i] != 0.0f;
                if (!row_any) continue;
                if (!gathered) {
                    tg.gather(sr, ids, tl, N);
                    tg.build_rows(tl);
                    gathered = true;
                }
                for (int64_t i = 0; i < n; ++i) { best_w[i] = -1.0f; best_j[i] = -1; }
                walk_row(tg, y - tl.y0, row, x0, n, y + 0.5f, [&](int64_t i, int64_t j, float a, float Tb) {
                    const float w = a * Tb;
                    float* e = es + rank[tl.n0 + j] * S;
                    e[0] += m[i] * w;
                    e[1] = std::max(e[1], m[i] * w);
                    e[2] += m[i];
                    e[3] += m[i] * Tb;
                    if (w > best_w[i]) { best_w[i] = w; best_j[i] = static_cast<int32_t>(j); }  // strict: front-most
                });
                for (int64_t i = 0; i < n; ++i)
                    if (best_j[i] >= 0) es[rank[tl.n0 + best_j[i]] * S + 4] += m[i];
            }
        }
    }
    Tensor out = torch::empty({S, C, N}, torch::kFloat32);
    float* po = out.data_ptr<float>();
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t i = 0; i < C * N; ++i) {
        double sum[S] = {0.0, 0.0, 0.0, 0.0, 0.0};
        for (int64_t q = first[i]; q < first[i + 1]; ++q) {
            const float* e = es + q * S;
            sum[0] += e[0];
            sum[1] = std::max(sum[1], double(e[1]));
            sum[2] += e[2];
            sum[3] += e[3];
            sum[4] += e[4];
        }
        for (int64_t k = 0; k < S; ++k) po[k * C * N + i] = static_cast<float>(sum[k]);
    }
    return out;
}

namespace {

// backgrounds [C, 3] float32, or empty (black) -> its data or nullptr.
const float* optional_backgrounds(const Tensor& backgrounds, int64_t C) {
    if (backgrounds.numel() == 0) return nullptr;
    check(backgrounds, "backgrounds");
    TORCH_CHECK(backgrounds.numel() == C * 3, "backgrounds must be [C, 3]");
    return backgrounds.data_ptr<float>();
}

// The colour of each pixel of one row, C_p = sum of a T c over its pairs + T_final bg (bg may be nullptr),
// in float64 -> Cp[i] for lanes i < n; col: the camera's colours [N, 3].
void row_colours(const TileGaussians& tg, int64_t r, RowFwd& row, int64_t x0, int64_t n, float py, const float* col,
                 const float* bg, double (*Cp)[3]) {
    for (int64_t i = 0; i < n; ++i)
        for (int ch = 0; ch < 3; ++ch) Cp[i][ch] = 0.0;
    walk_row(tg, r, row, x0, n, py, [&](int64_t i, int64_t j, float a, float Tb) {
        const float* cj = col + 3 * static_cast<int64_t>(tg.id[j]);
        const double w = double(a) * double(Tb);
        for (int ch = 0; ch < 3; ++ch) Cp[i][ch] += w * cj[ch];
    });
    if (bg)
        for (int64_t i = 0; i < n; ++i)
            for (int ch = 0; ch < 3; ++ch) Cp[i][ch] += double(row.lane(row.T, i)) * bg[ch];
}

}  // namespace

// The L1 loss change of each (camera, Gaussian) when it alone is removed (gspruner/pruning/removal.py): a
// pixel p's colour C_p = sum over its pairs of a T c + T_final bg is affine in each alpha, so for the pair
// (Gaussian i, p), with S = C_p - (the pairs up to and including i) what lies behind,
//   dC = a (T c - S / (1 - a)),   delta = |C_p - dC - gt_p|_1 - |C_p - gt_p|_1,
// summed over the pixels i is composited into -> [C, N] float64. feats [C, N, 3] are the view's colours,
// backgrounds [C, 3] (or empty: black), images [C, H W, 3]. Each row is walked twice (C_p first, then the
// pairs); per-entry sums in Gaussian order, reduced in tile order: the result does not depend on the threads.
Tensor removal_loss(Tensor means2d, Tensor conics, Tensor opac, Tensor feats, Tensor backgrounds, Tensor images,
                    Tensor tile_offsets, Tensor tile_ids, Tensor first_t, Tensor rank_t, int64_t width,
                    int64_t height, int64_t tile_size, double compact_box, int64_t threads) {
    check(means2d, "means2d");
    check(conics, "conics");
    check(opac, "opacities");
    check(feats, "colors");
    check(images, "images");
    check_tile_size(tile_size);
    const int64_t C = means2d.size(0), N = means2d.size(1), HW = width * height;
    TORCH_CHECK(feats.numel() == C * N * 3, "colors must be [C, N, 3]");
    TORCH_CHECK(images.numel() == C * HW * 3, "images must hold C x H x W x 3 values");
    const float* bg = optional_backgrounds(backgrounds, C);
    Grid gr(C, N, width, height, tile_size);
    const float *m2 = means2d.data_ptr<float>(), *cn = conics.data_ptr<float>(), *op = opac.data_ptr<float>();
    const float *fe = feats.data_ptr<float>(), *gt = images.data_ptr<float>();
    const int32_t *off = tile_offsets.data_ptr<int32_t>(), *ids = tile_ids.data_ptr<int32_t>();
    const int32_t *first = first_t.data_ptr<int32_t>(), *rank = rank_t.data_ptr<int32_t>();
    const int nt = threads_or_one(threads);
    SplatRecords sr;
    sr.build(m2, cn, op, nullptr, C * N, 0, static_cast<float>(compact_box), nt);
    std::vector<double> entry(tile_ids.numel(), 0.0);  // [I] in Gaussian order (rank)
    double* es = entry.data();
#pragma omp parallel num_threads(nt)
    {
        TileGaussians tg;
        RowFwd row;
        double Cp[LANES][3], prefix[LANES][3], base_loss[LANES];
#pragma omp for schedule(dynamic, 1)
        for (int64_t ct = 0; ct < C * gr.T; ++ct) {
            const Tile tl = gr.tile(ct, off);
            const int64_t c = tl.c, x0 = tl.x0, n = tl.n;
            if (tl.k == 0) continue;
            tg.gather(sr, ids, tl, N);
            tg.build_rows(tl);
            const float* col = fe + c * N * 3;
            for (int64_t y = tl.y0; y < tl.y1; ++y) {
                const float* g = gt + (c * HW + y * width + x0) * 3;
                row_colours(tg, y - tl.y0, row, x0, n, y + 0.5f, col, bg ? bg + 3 * c : nullptr, Cp);
                for (int64_t i = 0; i < n; ++i) {
                    base_loss[i] = 0.0;
                    for (int k = 0; k < 3; ++k) {
                        prefix[i][k] = 0.0;
                        base_loss[i] += std::fabs(Cp[i][k] - g[3 * i + k]);
                    }
                }
                walk_row(tg, y - tl.y0, row, x0, n, y + 0.5f, [&](int64_t i, int64_t j, float a, float Tb) {
                    const float* cj = col + 3 * static_cast<int64_t>(tg.id[j]);
                    const double da = a, T = Tb, w = da * T;
                    double loss = 0.0;
                    for (int k = 0; k < 3; ++k) {
                        prefix[i][k] += w * cj[k];
                        const double behind = Cp[i][k] - prefix[i][k];
                        const double dC = da * (T * cj[k] - behind / (1.0 - da));  // a dC/da (removal.py)
                        loss += std::fabs(Cp[i][k] - dC - g[3 * i + k]);
                    }
                    es[rank[tl.n0 + j]] += loss - base_loss[i];
                });
            }
        }
    }
    Tensor out = torch::empty({C, N}, torch::kFloat64);
    double* po = out.data_ptr<double>();
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t i = 0; i < C * N; ++i) {
        double sum = 0.0;
        for (int64_t q = first[i]; q < first[i + 1]; ++q) sum += es[q];
        po[i] = sum;
    }
    return out;
}

// PUP-3DGS's Fisher information (gspruner/pruning/sensitivity.py, PUP Eq. 9-10) of each (camera, Gaussian)
// without building the pairs: for each pair (Gaussian i, pixel p) with alpha a, T before, colour c,
//   dC/da = T c - S / (1 - a) (0 where a is clamped at 0.999), S = what lies behind (as removal_loss),
//   da/d(mean2d, conic) = -a dsigma/d(mean2d x, y, conic A, B, C),
// summed per (i, patch x patch pixel block, channel) into G [3, 5] and the block's sum of a T; then
// g6 = G J_i (+ sum a T * Jc_i on the mean's three columns) [3, 6] and F_i += sum over channels g6^T g6.
// J [C, N, 5, 6] = d(mean2d, conic)/d(mu, log s), Jc [C, N, 3, 3] = d colour / d mu, feats [C, N, 3] the
// colours, backgrounds [C, 3] or empty -> F [C, N, 6, 6] float64. The tile size must be a multiple of the
// patch (blocks never cross tiles). Per-entry sums in Gaussian order, reduced in tile order.
Tensor fisher_patches(Tensor means2d, Tensor conics, Tensor opac, Tensor feats, Tensor backgrounds, Tensor jac,
                      Tensor jac_colour, Tensor tile_offsets, Tensor tile_ids, Tensor first_t, Tensor rank_t,
                      int64_t width, int64_t height, int64_t tile_size, int64_t patch, double compact_box,
                      int64_t threads) {
    check(means2d, "means2d");
    check(conics, "conics");
    check(opac, "opacities");
    check(feats, "colors");
    check(jac, "J");
    check(jac_colour, "J_colour");
    check_tile_size(tile_size);
    TORCH_CHECK(patch >= 1 && tile_size % patch == 0, "the tile size must be a multiple of the patch size");
    const int64_t C = means2d.size(0), N = means2d.size(1);
    TORCH_CHECK(feats.numel() == C * N * 3, "colors must be [C, N, 3]");
    TORCH_CHECK(jac.numel() == C * N * 30 && jac_colour.numel() == C * N * 9, "J must be [C, N, 5, 6], J_colour [C, N, 3, 3]");
    const float* bg = optional_backgrounds(backgrounds, C);
    Grid gr(C, N, width, height, tile_size);
    const float *m2 = means2d.data_ptr<float>(), *cn = conics.data_ptr<float>(), *op = opac.data_ptr<float>();
    const float *fe = feats.data_ptr<float>(), *J = jac.data_ptr<float>(), *Jc = jac_colour.data_ptr<float>();
    const int32_t *off = tile_offsets.data_ptr<int32_t>(), *ids = tile_ids.data_ptr<int32_t>();
    const int32_t *first = first_t.data_ptr<int32_t>(), *rank = rank_t.data_ptr<int32_t>();
    const int nt = threads_or_one(threads);
    const int64_t blocks_x = tile_size / patch, blocks = blocks_x * blocks_x;
    constexpr int64_t A = 16;  // per (entry, block): G [3, 5], then sum a T
    constexpr int64_t S = 21;  // per entry: F's upper triangle
    SplatRecords sr;
    sr.build(m2, cn, op, nullptr, C * N, 0, static_cast<float>(compact_box), nt);
    std::vector<double> entry(tile_ids.numel() * S, 0.0);  // [I, 21] in Gaussian order (rank)
    double* es = entry.data();
#pragma omp parallel num_threads(nt)
    {
        TileGaussians tg;
        RowFwd row;
        std::vector<double> acc;  // [k, blocks, A]
        double Cp[LANES][3], prefix[LANES][3];
#pragma omp for schedule(dynamic, 1)
        for (int64_t ct = 0; ct < C * gr.T; ++ct) {
            const Tile tl = gr.tile(ct, off);
            const int64_t c = tl.c, x0 = tl.x0, n = tl.n, k = tl.k;
            if (k == 0) continue;
            tg.gather(sr, ids, tl, N);
            tg.build_rows(tl);
            acc.assign(k * blocks * A, 0.0);
            const float* col = fe + c * N * 3;
            for (int64_t y = tl.y0; y < tl.y1; ++y) {
                row_colours(tg, y - tl.y0, row, x0, n, y + 0.5f, col, bg ? bg + 3 * c : nullptr, Cp);
                for (int64_t i = 0; i < n; ++i)
                    for (int ch = 0; ch < 3; ++ch) prefix[i][ch] = 0.0;
                const double py = static_cast<double>(y) + 0.5;
                const int64_t block_row = ((y - tl.y0) / patch) * blocks_x;
                walk_row(tg, y - tl.y0, row, x0, n, y + 0.5f, [&](int64_t i, int64_t j, float a, float Tb) {
                    const int64_t g = c * N + tg.id[j];
                    const float* cj = col + 3 * static_cast<int64_t>(tg.id[j]);
                    const double da = a, T = Tb, w = da * T;
                    double dC[3];
                    for (int ch = 0; ch < 3; ++ch) {
                        prefix[i][ch] += w * cj[ch];
                        dC[ch] = da >= 0.999 ? 0.0 : T * cj[ch] - (Cp[i][ch] - prefix[i][ch]) / (1.0 - da);
                    }
                    const double dx = double(m2[2 * g]) - (static_cast<double>(x0 + i) + 0.5);
                    const double dy = double(m2[2 * g + 1]) - py;
                    const double qa = cn[3 * g], qb = cn[3 * g + 1], qc = cn[3 * g + 2];
                    const double dsigma[5] = {qa * dx + qb * dy, qb * dx + qc * dy, 0.5 * dx * dx, dx * dy, 0.5 * dy * dy};
                    double* b = &acc[(j * blocks + block_row + i / patch) * A];
                    for (int ch = 0; ch < 3; ++ch)
                        for (int m = 0; m < 5; ++m) b[ch * 5 + m] += dC[ch] * (-da * dsigma[m]);
                    b[15] += w;
                });
            }
            for (int64_t j = 0; j < k; ++j) {
                const int64_t g = c * N + tg.id[j];
                const float *Jg = J + g * 30, *Jcg = Jc + g * 9;
                double* e = es + rank[tl.n0 + j] * S;
                for (int64_t bl = 0; bl < blocks; ++bl) {
                    const double* b = &acc[(j * blocks + bl) * A];
                    if (b[15] == 0.0) continue;  // no pair of this entry in the block
                    for (int ch = 0; ch < 3; ++ch) {
                        double g6[6];
                        for (int q = 0; q < 6; ++q) {
                            double v = 0.0;
                            for (int m = 0; m < 5; ++m) v += b[ch * 5 + m] * Jg[m * 6 + q];
                            g6[q] = v + (q < 3 ? b[15] * Jcg[ch * 3 + q] : 0.0);
                        }
                        for (int r = 0, u = 0; r < 6; ++r)
                            for (int q = r; q < 6; ++q, ++u) e[u] += g6[r] * g6[q];
                    }
                }
            }
        }
    }
    Tensor out = torch::empty({C, N, 6, 6}, torch::kFloat64);
    double* po = out.data_ptr<double>();
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t i = 0; i < C * N; ++i) {
        double sum[S] = {};
        for (int64_t q = first[i]; q < first[i + 1]; ++q)
            for (int64_t u = 0; u < S; ++u) sum[u] += es[q * S + u];
        for (int r = 0, u = 0; r < 6; ++r)
            for (int q = r; q < 6; ++q, ++u) po[i * 36 + r * 6 + q] = po[i * 36 + q * 6 + r] = sum[u];
    }
    return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "gspruner's compiled CPU rasterizer (gsplat 1.5.3's algorithm, C++/OpenMP)";
    m.def("project_fwd", &project_fwd);
    m.def("project_bwd", &project_bwd);
    m.def("sh_fwd", &sh_fwd);
    m.def("sh_bwd", &sh_bwd);
    m.def("sh_fwd_split", &sh_fwd_split);
    m.def("sh_bwd_split", &sh_bwd_split);
    m.def("bin_tiles", &bin_tiles);
    m.def("raster_fwd", &raster_fwd);
    m.def("raster_bwd", &raster_bwd);
    m.def("collect_pairs", &collect_pairs);
    m.def("contribution_stats", &contribution_stats);
    m.def("removal_loss", &removal_loss);
    m.def("fisher_patches", &fisher_patches);
}
