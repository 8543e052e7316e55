import Foundation
import HummingbirdCore
import Logging
import NIOCore

/// Limits on connections (`serve --max-connections`, `--request-timeout`).
///
/// Contract: at most `maxConnections` connections are open at once; one more is closed as it is
/// accepted. A connection that has started sending a request must receive its answer within
/// `requestTimeout` (the clock starts at the first byte after the previous answer), so a client that
/// trickles its headers or body is cut off while the others are served.
public struct ConnectionLimits: Sendable, Equatable {
    public var maxConnections: Int
    public var requestTimeout: TimeAmount
    public init(maxConnections: Int = 1024, requestTimeout: TimeAmount = .seconds(60)) {
        self.maxConnections = maxConnections
        self.requestTimeout = requestTimeout
    }
}

final class ConnectionCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var open = 0
    func enter(max: Int) -> Bool {
        lock.withLock {
            guard open < max else { return false }
            open += 1
            return true
        }
    }
    func leave() { lock.withLock { open -= 1 } }
}

struct ConnectionLimitReached: Error {}

/// Closes a connection whose request has not been answered `timeout` after its first byte.
final class RequestDeadlineHandler: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let timeout: TimeAmount
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount) { self.timeout = timeout }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if deadline == nil {
            let channel = context.channel
            deadline = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // The answer has started: the client is not the slow one.
        deadline?.cancel()
        deadline = nil
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }
}

/// A child channel that applies `ConnectionLimits` before the rest of the pipeline (TLS, HTTP).
struct GuardedChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let limits: ConnectionLimits
    let counter: ConnectionCounter

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        guard counter.enter(max: limits.maxConnections) else {
            logger.warning("connection refused: --max-connections reached", metadata: ["limit": "\(limits.maxConnections)"])
            channel.close(promise: nil)
            return channel.eventLoop.makeFailedFuture(ConnectionLimitReached())
        }
        channel.closeFuture.whenComplete { _ in counter.leave() }
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(RequestDeadlineHandler(timeout: limits.requestTimeout), position: .first)
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}
