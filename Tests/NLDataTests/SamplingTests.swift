import NLData
import Testing
import NLTensor
import NLVideo

/// Frame indices against values worked out by hand from mmaction2's SampleFrames.
struct SamplingTests {
    var generator = SeededGenerator(seed: 3)

    @Test mutating func testModeCentresTheClip() {
        // 100 frames, 32 at interval 2: room 37, the clip starts at int(37 / 2) = 18.
        let one = SampleFrames(clipLength: 32, frameInterval: 2, testMode: true)
        #expect(one.indices(frameCount: 100, using: &generator) == Array(stride(from: 18, through: 80, by: 2)))
        // Ten clips over 300 frames: average 23.7, offsets int(i * 23.7 + 11.85).
        let ten = SampleFrames(clipLength: 32, frameInterval: 2, numClips: 10, testMode: true)
        let indices = ten.indices(frameCount: 300, using: &generator)
        let offsets = stride(from: 0, to: 320, by: 32).map { indices[$0] }
        #expect(offsets == [11, 35, 59, 82, 106, 130, 154, 177, 201, 225])
    }

    @Test mutating func shortVideosLoop() {
        // 50 frames cannot hold 32 x 2: the clip starts at 0 and wraps around.
        let sampler = SampleFrames(clipLength: 32, frameInterval: 2, testMode: true)
        #expect(sampler.indices(frameCount: 50, using: &generator) == (0..<32).map { ($0 * 2) % 50 })
        let train = SampleFrames(clipLength: 32, frameInterval: 2)
        #expect(train.indices(frameCount: 30, using: &generator) == (0..<32).map { ($0 * 2) % 30 })
    }

    @Test mutating func trainingDrawsWithinEachShare() {
        // 10 frames, 3 clips of 4: room 7, average 7 // 3 = 2, offsets i * 2 + [0, 2).
        let sampler = SampleFrames(clipLength: 4, frameInterval: 1, numClips: 3)
        var seen = Set<[Int]>()
        for _ in 0..<200 {
            let i = sampler.indices(frameCount: 10, using: &generator)
            let offsets = [i[0], i[4], i[8]]
            #expect(zip(offsets, [0, 2, 4]).allSatisfy { $0 >= $1 && $0 < $1 + 2 })
            #expect(i[1] == i[0] + 1 && i[3] == i[0] + 3)
            seen.insert(offsets)
        }
        #expect(seen.count == 8)  // every combination drawn
        // Room 7 for 10 clips: average 0 but frames to spare: sorted draws in [0, 7).
        let many = SampleFrames(clipLength: 32, frameInterval: 2, numClips: 10)
        let drawn = many.indices(frameCount: 70, using: &generator)
        let offsets = stride(from: 0, to: 320, by: 32).map { drawn[$0] }
        #expect(offsets == offsets.sorted() && offsets.allSatisfy { (0..<7).contains($0) })
        // Room 1 for 2 clips: offsets round([0, 0.5]) = [0, 0] (numpy rounds half to even).
        let two = SampleFrames(clipLength: 32, frameInterval: 2, numClips: 2)
        #expect(two.indices(frameCount: 64, using: &generator)[32] == 0)
        // One clip anywhere in 300 frames: start in [0, 237).
        let starts = (0..<500).map { _ in
            SampleFrames(clipLength: 32, frameInterval: 2).indices(frameCount: 300, using: &generator)[0]
        }
        #expect(starts.min()! >= 0 && starts.max()! < 237 && Set(starts).count > 150)
    }

    @Test mutating func tsnSegments() {
        // 100 frames in 8 segments: test picks int(i * 12.5 + 6.25), training i * 12 + [0, 12).
        #expect(
            SampleFrames.segments(8, testMode: true).indices(frameCount: 100, using: &generator) == [
                6, 18, 31, 43, 56, 68, 81, 93,
            ])
        let drawn = SampleFrames.segments(8).indices(frameCount: 100, using: &generator)
        #expect(drawn.enumerated().allSatisfy { $1 >= $0 * 12 && $1 < $0 * 12 + 12 })
    }
}
