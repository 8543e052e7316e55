import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOSSL

/// TLS from certificate files that are read again when they change, so certificates rotate without a
/// restart (`serve --tls-cert --tls-key [--tls-client-ca]`).
///
/// Contract: TLS 1.2 or later. Each new connection is served with the files as they are then: the
/// files' modification times are compared at each connection and the context rebuilt when one moved.
/// A rotation that cannot be read (a half-written key, a certificate that does not match its key) keeps
/// the previous context and is logged, so a bad rotation never takes the server down. With a client
/// CA, every client must present a certificate it signed (mutual TLS).
public final class TLSFiles: @unchecked Sendable {
    public struct Paths: Sendable, Equatable {
        public var certificate: String
        public var key: String
        public var clientCA: String?
        public init(certificate: String, key: String, clientCA: String? = nil) {
            self.certificate = certificate
            self.key = key
            self.clientCA = clientCA
        }
    }

    public let paths: Paths
    let logger: Logger
    private let lock = NSLock()
    private var context: NIOSSLContext
    private var stamps: [Date?]

    /// Reads the files once; throws naming the file when they cannot be used.
    public init(_ paths: Paths, logger: Logger) throws {
        self.paths = paths
        self.logger = logger
        stamps = Self.stamps(paths)
        context = try Self.makeContext(paths)
    }

    static func stamps(_ p: Paths) -> [Date?] {
        [p.certificate, p.key, p.clientCA].map { path in
            path.flatMap { (try? FileManager.default.attributesOfItem(atPath: $0))?[.modificationDate] as? Date }
        }
    }

    static func makeContext(_ p: Paths) throws -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMFile(p.certificate) } catch { throw TLSFilesError(file: p.certificate, error: "\(error)") }
        guard !chain.isEmpty else { throw TLSFilesError(file: p.certificate, error: "no PEM certificate in it") }
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(file: p.key, format: .pem) } catch { throw TLSFilesError(file: p.key, error: "\(error)") }
        var config = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        config.minimumTLSVersion = .tlsv12
        if let ca = p.clientCA {
            guard FileManager.default.isReadableFile(atPath: ca) else { throw TLSFilesError(file: ca, error: "cannot be read") }
            config.trustRoots = .file(ca)
            config.certificateVerification = .noHostnameVerification
        }
        do { return try NIOSSLContext(configuration: config) } catch {
            throw TLSFilesError(file: p.certificate, error: "certificate and key do not make a TLS context: \(error)")
        }
    }

    /// The context for a new connection, rebuilt first when a file changed.
    func current() -> NIOSSLContext {
        let now = Self.stamps(paths)
        lock.lock()
        defer { lock.unlock() }
        if now != stamps {
            stamps = now
            do {
                context = try Self.makeContext(paths)
                logger.info("TLS certificate reloaded", metadata: ["certificate": "\(paths.certificate)"])
            } catch {
                logger.error("TLS certificate not reloaded; serving the previous one", metadata: ["error": "\(error)"])
            }
        }
        return context
    }
}

public struct TLSFilesError: Error, CustomStringConvertible {
    public let file: String
    public let error: String
    public var description: String { "TLS: \(file): \(error)" }
}

/// A child channel that adds TLS with the context of `TLSFiles` at each new connection.
struct ReloadingTLSChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let files: TLSFiles

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: files.current()))
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1, over TLS whose certificate follows its files when `tls` is set, within `limits`.
    static func http1(tls files: TLSFiles?, limits: ConnectionLimits) -> HTTPServerBuilder {
        let counter = ConnectionCounter()
        return .init { responder in
            let http = HTTP1Channel(responder: responder)
            if let files {
                return GuardedChannel(base: ReloadingTLSChannel(base: http, files: files), limits: limits, counter: counter)
            }
            return GuardedChannel(base: http, limits: limits, counter: counter)
        }
    }
}
