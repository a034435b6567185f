import CDNNL
import Foundation
import NLTensor

/// oneDNN (Intel's primitives for deep learning; Debian's libdnnl 2.6), which runs convolutions
/// in bfloat16 on CPUs that have the instructions: the process's engine and stream, and the few
/// objects the layers hold. A failing call is a programming error here (the descriptors are
/// built from shapes the layers checked), so it stops the process with oneDNN's status.
enum OneDNN {
    nonisolated(unsafe) static let engine: dnnl_engine_t = {
        OpenMP.setThreadCount(Parallel.threadCount)  // the project's count, not OpenMP's (every core)
        var engine: dnnl_engine_t?
        check(dnnl_engine_create(&engine, dnnl_cpu, 0), "creating the CPU engine")
        return engine!
    }()

    nonisolated(unsafe) static let stream: dnnl_stream_t = {
        var stream: dnnl_stream_t?
        check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue), "creating a stream")
        return stream!
    }()

    static func check(_ status: dnnl_status_t, _ doing: @autoclosure () -> String) {
        precondition(status == dnnl_success, "oneDNN failed \(doing()): status \(status.rawValue)")
    }

    /// The library's version, as "2.6.3".
    static var version: String {
        let v = dnnl_version()!.pointee
        return "\(v.major).\(v.minor).\(v.patch)"
    }

    /// Whether oneDNN runs bfloat16 on instructions of this CPU (AVX512_BF16 or AMX), not on a
    /// slow emulation.
    static var runsBFloat16: Bool {
        let isa = dnnl_get_effective_cpu_isa()
        return isa == dnnl_cpu_isa_avx512_core_bf16 || isa == dnnl_cpu_isa_avx512_core_amx
    }

    /// A memory descriptor of `dims` (in oneDNN's logical order) laid out as `tag`.
    static func descriptor(_ dims: [Int], _ type: dnnl_data_type_t, _ tag: dnnl_format_tag_t) -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        let extents = dims.map(Int64.init)
        check(dnnl_memory_desc_init_by_tag(&md, Int32(dims.count), extents, type, tag), "describing \(dims)")
        return md
    }

    /// A memory descriptor of `dims` with the elements `strides` apart along each.
    static func descriptor(_ dims: [Int], _ type: dnnl_data_type_t, strides: [Int]) -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        let (extents, steps) = (dims.map(Int64.init), strides.map(Int64.init))
        check(dnnl_memory_desc_init_by_strides(&md, Int32(dims.count), extents, type, steps), "describing \(dims)")
        return md
    }

    /// A memory object: allocated by oneDNN (with `zeroed`, filled with zeros: a layout's padding
    /// must hold zeros, which the project's own loops into it leave as they are), or (`allocated`
    /// false) over the caller's buffers, given by `point(to:)` before each use.
    final class Memory {
        let handle: dnnl_memory_t
        let descriptor: dnnl_memory_desc_t

        init(_ md: dnnl_memory_desc_t, allocated: Bool = true, zeroed: Bool = false) {
            var md = md
            var memory: dnnl_memory_t?
            check(
                dnnl_memory_create(&memory, &md, engine, allocated ? cdnnl_memory_allocate() : nil), "creating memory")
            (handle, descriptor) = (memory!, md)
            if allocated && zeroed { memset(data, 0, bytes) }
        }

        /// The buffer it points at.
        var data: UnsafeMutableRawPointer {
            var pointer: UnsafeMutableRawPointer?
            check(dnnl_memory_get_data_handle(handle, &pointer), "getting a memory's buffer")
            return pointer!
        }

        /// The bytes its layout takes.
        var bytes: Int {
            var md = descriptor
            return dnnl_memory_desc_get_size(&md)
        }

        func point(to pointer: UnsafeMutableRawPointer) {
            check(dnnl_memory_set_data_handle_v2(handle, pointer, stream), "setting a memory's buffer")
        }

        deinit { dnnl_memory_destroy(handle) }
    }

    /// A primitive and its descriptor.
    final class Primitive {
        let handle: dnnl_primitive_t
        let descriptor: dnnl_primitive_desc_t

        /// The primitive of `operation` (an initialised operation descriptor), with `attributes`.
        init(_ operation: UnsafeRawPointer, hint: Primitive? = nil, attributes: dnnl_primitive_attr_t? = nil) {
            var pd: dnnl_primitive_desc_t?
            check(
                dnnl_primitive_desc_create(&pd, operation, attributes, engine, hint?.descriptor),
                "creating a primitive descriptor")
            var primitive: dnnl_primitive_t?
            check(dnnl_primitive_create(&primitive, pd), "creating a primitive")
            (handle, descriptor) = (primitive!, pd!)
        }

        init(handle: dnnl_primitive_t, descriptor: dnnl_primitive_desc_t) {
            (self.handle, self.descriptor) = (handle, descriptor)
        }

        /// The memory layout the primitive wants for `what` (dnnl_query_src_md, ...).
        func layout(_ what: dnnl_query_t) -> dnnl_memory_desc_t {
            dnnl_primitive_desc_query_md(descriptor, what, 0)!.pointee
        }

        /// Which implementation oneDNN chose ("jit_bf16:avx512_core_bf16").
        var implementation: String {
            var name: UnsafePointer<CChar>?
            _ = withUnsafeMutablePointer(to: &name) {
                dnnl_primitive_desc_query(descriptor, dnnl_query_impl_info_str, 0, $0)
            }
            return name.map { String(cString: $0) } ?? "?"
        }

        /// Runs the primitive on `arguments` (DNNL_ARG_SRC, memory), to completion.
        func run(_ arguments: [(Int32, Memory)]) {
            let args = arguments.map { dnnl_exec_arg_t(arg: $0.0, memory: $0.1.handle) }
            check(dnnl_primitive_execute(handle, stream, Int32(args.count), args), "running a primitive")
            check(dnnl_stream_wait(stream), "waiting for a primitive")
        }

        deinit {
            dnnl_primitive_destroy(handle)
            dnnl_primitive_desc_destroy(descriptor)
        }
    }

    /// A reorder from `source`'s layout and type to `destination`'s; with `adding`, it adds into
    /// the destination (a sum post-op) instead of overwriting it.
    static func reorder(
        _ source: dnnl_memory_desc_t, _ destination: dnnl_memory_desc_t, adding: Bool = false
    )
        -> Primitive
    {
        var (source, destination) = (source, destination)
        var attributes: dnnl_primitive_attr_t?
        check(dnnl_primitive_attr_create(&attributes), "creating attributes")
        defer { dnnl_primitive_attr_destroy(attributes) }
        if adding {
            var postOps: dnnl_post_ops_t?
            check(dnnl_post_ops_create(&postOps), "creating post-ops")
            defer { dnnl_post_ops_destroy(postOps) }
            check(dnnl_post_ops_append_sum(postOps, 1), "adding a sum")
            check(dnnl_primitive_attr_set_post_ops(attributes, postOps), "setting post-ops")
        }
        var pd: dnnl_primitive_desc_t?
        check(
            dnnl_reorder_primitive_desc_create(&pd, &source, engine, &destination, engine, attributes),
            "creating a reorder")
        var primitive: dnnl_primitive_t?
        check(dnnl_primitive_create(&primitive, pd), "creating a reorder primitive")
        return Primitive(handle: primitive!, descriptor: pd!)
    }

    /// Whether two layouts are the same.
    static func same(_ a: dnnl_memory_desc_t, _ b: dnnl_memory_desc_t) -> Bool {
        var (a, b) = (a, b)
        return dnnl_memory_desc_equal(&a, &b) != 0
    }
}
