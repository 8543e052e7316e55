import Testing
import WaybillCollectors

@Suite struct OTLPStatusTests {
    @Test func encodesGoogleRpcStatusWireFormat() {
        // field 1 varint 3, field 2 length 3 "bad"
        #expect(OTLPStatus(code: 3, message: "bad").protobufBytes == [0x08, 0x03, 0x12, 0x03, 0x62, 0x61, 0x64])
        #expect(OTLPStatus(code: 0, message: "").protobufBytes == [])
        // A message of 200 bytes takes a two-byte length.
        let long = OTLPStatus(code: 8, message: String(repeating: "x", count: 200)).protobufBytes
        #expect(Array(long.prefix(5)) == [0x08, 0x08, 0x12, 0xc8, 0x01])
    }

    @Test func decodesWhatItEncodesAndSkipsDetails() {
        for s in [OTLPStatus(code: 3, message: "resourceSpans[0]: é"), OTLPStatus(code: -1, message: ""), OTLPStatus(code: 14, message: "busy")] {
            #expect(OTLPStatus(protobuf: s.protobufBytes) == s)
        }
        // field 3 (details: repeated Any) between code and message is skipped.
        let withDetails: [UInt8] = [0x08, 0x07, 0x1a, 0x02, 0x0a, 0x00, 0x12, 0x02, 0x6e, 0x6f]
        #expect(OTLPStatus(protobuf: withDetails) == OTLPStatus(code: 7, message: "no"))
        #expect(OTLPStatus(protobuf: [0x12, 0x05, 0x61]) == nil)
        #expect(OTLPStatus(protobuf: [0x0f]) == nil)
    }

    @Test func mapsHTTPStatusToGRPCCode() {
        let pairs: [(Int, Int32)] = [(400, 3), (401, 16), (403, 7), (413, 8), (415, 3), (429, 8), (503, 14), (500, 13)]
        for (http, grpc) in pairs { #expect(OTLPStatus(httpStatus: http, message: "m").code == grpc) }
    }
}
