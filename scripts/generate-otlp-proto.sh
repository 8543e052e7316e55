#!/usr/bin/env bash
# Regenerates Sources/WaybillOTLPProto/*.pb.swift, the swift-protobuf code for OTLP traces
# (ExportTraceServiceRequest/Response and what they contain). CI does not run this: the output is
# committed, because building protoc-gen-swift takes minutes.
#
# Inputs, all pinned:
#   - the .proto definitions, as the FileDescriptorProtos serialized inside the PyPI package
#     opentelemetry-proto $OTEL_PROTO_PY (byte for byte the descriptors protoc makes from upstream
#     opentelemetry-proto v1.10.0 and v1.11.0 for these four files, which are the same in both;
#     protoc turns a descriptor set back into the same plugin input as the .proto files, less comments);
#   - protoc from Debian's protobuf-compiler;
#   - protoc-gen-swift built from apple/swift-protobuf $SWIFT_PROTOBUF, the version Package.swift uses.
#
# usage: scripts/generate-otlp-proto.sh            (needs python3 with venv, protoc, swift)
#        PROTOC_GEN_SWIFT=/path/to/protoc-gen-swift scripts/generate-otlp-proto.sh   (skips its build)
set -euo pipefail
cd "$(dirname "$0")/.."
OTEL_PROTO_PY=1.45.2
SWIFT_PROTOBUF=1.39.0
OUT=Sources/WaybillOTLPProto
WORK=${WORK:-$(mktemp -d /tmp/otlp-proto-gen.XXXXXX)}
FILES=(opentelemetry/proto/common/v1/common.proto opentelemetry/proto/resource/v1/resource.proto
       opentelemetry/proto/trace/v1/trace.proto opentelemetry/proto/collector/trace/v1/trace_service.proto)

command -v protoc >/dev/null || { echo "protoc missing: apt-get install -y protobuf-compiler" >&2; exit 1; }

# 1. The descriptors, from the pinned Python package, written as a FileDescriptorSet.
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q --disable-pip-version-check "opentelemetry-proto==$OTEL_PROTO_PY"
"$WORK/venv/bin/python" - "$WORK/otlp.fds" <<'PY'
import sys
from google.protobuf import descriptor_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
s = descriptor_pb2.FileDescriptorSet()
for m in (common_pb2, resource_pb2, trace_pb2, trace_service_pb2):  # dependencies first
    s.file.add().ParseFromString(m.DESCRIPTOR.serialized_pb)
open(sys.argv[1], "wb").write(s.SerializeToString())
PY

# 2. protoc-gen-swift at the pinned version, in a scratch package (release build).
PLUGIN=${PROTOC_GEN_SWIFT:-}
if [ -z "$PLUGIN" ]; then
    mkdir -p "$WORK/plugin"
    cat > "$WORK/plugin/Package.swift" <<SWIFT
// swift-tools-version: 6.1
import PackageDescription
let package = Package(name: "plugin", dependencies: [
    .package(url: "https://github.com/apple/swift-protobuf.git", exact: "$SWIFT_PROTOBUF"),
], targets: [])
SWIFT
    (cd "$WORK/plugin" && swift package resolve)
    (cd "$WORK/plugin/.build/checkouts/swift-protobuf" && swift build -c release --product protoc-gen-swift --scratch-path "$WORK/plugin/build")
    PLUGIN="$WORK/plugin/build/release/protoc-gen-swift"
fi
"$PLUGIN" --version

# 3. Generate, and replace the committed files.
mkdir -p "$WORK/gen"
protoc --descriptor_set_in="$WORK/otlp.fds" --plugin=protoc-gen-swift="$PLUGIN" \
    --swift_opt=Visibility=Public --swift_opt=FileNaming=PathToUnderscores \
    --swift_out="$WORK/gen" "${FILES[@]}"
rm -f "$OUT"/*.pb.swift
mkdir -p "$OUT"
cp "$WORK/gen"/*.pb.swift "$OUT"/
ls -l "$OUT"
