import CMPI
import Foundation

/// The processes of a data-parallel job, over MPI. `Communicator.world` is nil in a process that
/// mpirun (or Slurm's srun) did not start: then nothing calls MPI at all. The one Swift face of
/// CMPI; MPI's errors abort the job (MPI_ERRORS_ARE_FATAL), as a failed collective leaves no
/// state worth going on from.
public final class Communicator: @unchecked Sendable {
    public let rank: Int
    public let size: Int

    /// The job's processes, when this one was launched as one of them (MPI is then initialised
    /// on first use and finalised at exit); nil otherwise.
    public static let world: Communicator? = {
        let environment = ProcessInfo.processInfo.environment
        guard ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"].contains(where: { environment[$0] != nil }) else {
            return nil
        }
        var provided: Int32 = 0
        MPI_Init_thread(nil, nil, Int32(MPI_THREAD_FUNNELED), &provided)
        atexit { MPI_Finalize() }
        var rank: Int32 = 0, size: Int32 = 0
        MPI_Comm_rank(cmpi_comm_world(), &rank)
        MPI_Comm_size(cmpi_comm_world(), &size)
        return Communicator(rank: Int(rank), size: Int(size))
    }()

    private init(rank: Int, size: Int) {
        (self.rank, self.size) = (rank, size)
    }

    public var isRoot: Bool { rank == 0 }

    /// Every process's `values` summed, in place on each.
    public func sum(_ values: UnsafeMutablePointer<Float>, count: Int) {
        forEachPiece(count) {
            MPI_Allreduce(cmpi_in_place(), values + $0, $1, cmpi_float(), cmpi_sum(), cmpi_comm_world())
        }
    }

    public func sum(_ values: UnsafeMutablePointer<Double>, count: Int) {
        forEachPiece(count) {
            MPI_Allreduce(cmpi_in_place(), values + $0, $1, cmpi_double(), cmpi_sum(), cmpi_comm_world())
        }
    }

    public func sum(_ values: [Double]) -> [Double] {
        var result = values
        result.withUnsafeMutableBufferPointer { sum($0.baseAddress!, count: $0.count) }
        return result
    }

    /// The largest of every process's `value`.
    public func maximum(_ value: Int) -> Int {
        var v = value
        MPI_Allreduce(cmpi_in_place(), &v, 1, cmpi_long(), cmpi_max(), cmpi_comm_world())
        return v
    }

    /// Rank 0's bytes, on every process (`data` is ignored elsewhere).
    public func broadcast(_ data: Data) -> Data {
        var count = isRoot ? data.count : 0
        MPI_Bcast(&count, 1, cmpi_long(), 0, cmpi_comm_world())
        var bytes = isRoot ? [UInt8](data) : [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { buffer in
            forEachPiece(count) { MPI_Bcast(buffer.baseAddress! + Int($0), $1, cmpi_byte(), 0, cmpi_comm_world()) }
        }
        return Data(bytes)
    }

    /// Every process's bytes, in rank order, on rank 0; nil elsewhere.
    public func gather(_ data: Data) -> [Data]? {
        var count = data.count
        var counts = [Int](repeating: 0, count: isRoot ? size : 0)
        _ = counts.withUnsafeMutableBufferPointer {
            MPI_Gather(&count, 1, cmpi_long(), $0.baseAddress, 1, cmpi_long(), 0, cmpi_comm_world())
        }
        // Rank by rank, as point-to-point messages: the sizes are small (scores), the order fixed.
        if !isRoot {
            var bytes = [UInt8](data)
            bytes.withUnsafeMutableBytes { buffer in
                forEachPiece(count) {
                    MPI_Send(buffer.baseAddress! + Int($0), $1, cmpi_byte(), 0, 0, cmpi_comm_world())
                }
            }
            return nil
        }
        var result = [data]
        for source in 1..<size {
            var bytes = [UInt8](repeating: 0, count: counts[source])
            bytes.withUnsafeMutableBytes { buffer in
                forEachPiece(counts[source]) {
                    MPI_Recv(buffer.baseAddress! + Int($0), $1, cmpi_byte(), Int32(source), 0, cmpi_comm_world(), nil)
                }
            }
            result.append(Data(bytes))
        }
        return result
    }

    /// Ends every process of the job with `status` (a failed rank must not leave the others
    /// waiting in a collective).
    public func abort(status: Int32) -> Never {
        MPI_Abort(cmpi_comm_world(), status)
        exit(status)
    }

    /// MPI counts are Int32: larger buffers go in pieces of at most 2^30 elements.
    private func forEachPiece(_ count: Int, _ body: (Int, Int32) -> Void) {
        let piece = 1 << 30
        for start in stride(from: 0, to: count, by: piece) { body(start, Int32(min(piece, count - start))) }
    }
}
