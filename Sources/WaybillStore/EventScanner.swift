import WaybillModel

/// Where a scan of events stopped: the last event's time and a tie-break the engine chose (opaque to callers).
public struct EventScanCursor: Sendable, Hashable {
    public var time: Micros
    public var tieBreak: String
    public init(time: Micros, tieBreak: String) {
        self.time = time
        self.tieBreak = tieBreak
    }
}

/// One page of a scan: events in time order, and where the next page starts (nil on the last page).
public struct EventScanPage: Sendable {
    public var events: [CloudEvent]
    public var next: EventScanCursor?
    public init(events: [CloudEvent], next: EventScanCursor?) {
        self.events = events
        self.next = next
    }
}

/// Reads every stored business event of a time window in time order, one bounded page at a time (the
/// OCEL export and other whole-window reads that must not hold a window in memory).
///
/// Contract (every engine):
/// - Following `next` from a nil cursor until it is nil returns each event whose `time` is in `range`
///   exactly once, duplicates stored once as `EventWriter` says, and no event outside `range`.
/// - Events come in non-decreasing `time`; events of the same time come in an order of the engine's
///   choosing that is the same for every page of the scan (the cursor's `tieBreak`).
/// - A page holds at most `limit` events (at least one when any is left), with `data` parsed and `raw`
///   as stored; memory is bounded by the page, never by the window.
/// - Events appended while a scan runs may or may not appear, but every event committed before its first
///   page was read appears (unless retention deleted it meanwhile).
public protocol EventScanner: Sendable {
    func scanEvents(in range: Range<Micros>, after cursor: EventScanCursor?, limit: Int) throws -> EventScanPage
    /// Every event of the window in turn, in pages of at most `pageSize` (at least one event each): the
    /// events and order that following `scanEvents` pages gives. An engine may read the window its own
    /// way (in one pass); the default follows `scanEvents` pages.
    func forEachEventPage(in range: Range<Micros>, pageSize: Int, _ body: ([CloudEvent]) throws -> Void) throws
}

extension EventScanner {
    /// Every page of the window in turn; `body` sees each page's events once.
    public func forEachEventPage(in range: Range<Micros>, pageSize: Int = 2_000, _ body: ([CloudEvent]) throws -> Void) throws {
        var cursor: EventScanCursor?
        repeat {
            let page = try scanEvents(in: range, after: cursor, limit: pageSize)
            if !page.events.isEmpty { try body(page.events) }
            cursor = page.next
        } while cursor != nil
    }
}
