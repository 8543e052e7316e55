import WaybillModel

/// Why stored KPI bytes could not be read back (the varint codec is WaybillModel's `ByteSink`/`ByteSource`).
public typealias KPIDecodingError = ByteDecodingError
