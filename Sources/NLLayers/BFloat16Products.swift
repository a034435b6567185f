import CDNNL
import NLTensor

/// Matrix products with bfloat16 inputs and float32 accumulation and result, by oneDNN's matmul:
/// the non-local blocks' pairwise products in bf16 precision. Row-major operands as GEMM.multiply
/// takes them, but in bfloat16 (C is float32, overwritten: beta 0): the caller rounds each
/// operand once, however many products read it, and a transposed operand is read as it lies.
/// One primitive per shape, made on first use and kept by the block that owns this (its memory
/// objects point at that block's tensors while they run, so blocks do not share them).
public final class BFloat16Products {
    struct Shape: Hashable {
        let transposeA, transposeB: Bool
        let m, n, k, lda, ldb, ldc: Int
        let alpha: Float
    }

    final class Product {
        let matmul: OneDNN.Primitive
        let a, b, c: OneDNN.Memory

        init(_ s: Shape) {
            // op(A) is (m, k) and op(B) (k, n); a transposed operand is read across its rows.
            var a16 = OneDNN.descriptor([s.m, s.k], dnnl_bf16, strides: s.transposeA ? [1, s.lda] : [s.lda, 1])
            var b16 = OneDNN.descriptor([s.k, s.n], dnnl_bf16, strides: s.transposeB ? [1, s.ldb] : [s.ldb, 1])
            var c32 = OneDNN.descriptor([s.m, s.n], dnnl_f32, strides: [s.ldc, 1])
            var operation = dnnl_matmul_desc_t()
            OneDNN.check(dnnl_matmul_desc_init(&operation, &a16, &b16, nil, &c32), "describing a matmul")
            var attributes: dnnl_primitive_attr_t?
            OneDNN.check(dnnl_primitive_attr_create(&attributes), "creating attributes")
            defer { dnnl_primitive_attr_destroy(attributes) }
            var alpha = s.alpha
            OneDNN.check(dnnl_primitive_attr_set_output_scales(attributes, 1, 0, &alpha), "scaling a matmul")
            matmul = OneDNN.Primitive(&operation, attributes: attributes)
            (a, b, c) = (
                OneDNN.Memory(a16, allocated: false), OneDNN.Memory(b16, allocated: false),
                OneDNN.Memory(c32, allocated: false)
            )
        }
    }

    private var made: [Shape: Product] = [:]

    public init() {}

    /// C[M, N] = alpha * op(A)[M, K] * op(B)[K, N], op(X) being X or its transpose, A and B in
    /// bfloat16.
    public func multiply(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<UInt16>,
        lda: Int, b: UnsafePointer<UInt16>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let shape = Shape(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc, alpha: alpha
        )
        let product = made[shape] ?? Product(shape)
        made[shape] = product
        product.a.point(to: UnsafeMutableRawPointer(mutating: a))
        product.b.point(to: UnsafeMutableRawPointer(mutating: b))
        product.c.point(to: c)
        product.matmul.run([(DNNL_ARG_SRC, product.a), (DNNL_ARG_WEIGHTS, product.b), (DNNL_ARG_DST, product.c)])
    }

    /// What `multiply` computes, on any CPU: the operands' stored extents widened to float32,
    /// then float32 products (GEMM). The reference the tests hold oneDNN's products to.
    public static func emulate(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<UInt16>,
        lda: Int, b: UnsafePointer<UInt16>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        func widened(_ bits: UnsafePointer<UInt16>, count: Int) -> [Float] {
            (0..<count).map(BFloat16Elements(UnsafeMutablePointer(mutating: bits)).value)
        }
        let a32 = widened(a, count: ((transposeA ? k : m) - 1) * lda + (transposeA ? m : k))
        let b32 = widened(b, count: ((transposeB ? n : k) - 1) * ldb + (transposeB ? k : n))
        GEMM.multiply(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a32, lda: lda, b: b32,
            ldb: ldb, c: c, ldc: ldc)
    }
}
