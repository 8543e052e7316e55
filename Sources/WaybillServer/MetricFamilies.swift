/// Every family `/metrics` shows: name, type, help, labels and (histograms) bucket bounds in base
/// units. The exposition takes its `# HELP` text from here, and docs/metrics.md lists the same
/// families (a test compares them).
public struct MetricFamily: Sendable, Equatable {
    public enum Kind: String, Sendable { case counter, gauge, histogram }
    public let name: String
    public let kind: Kind
    public let help: String
    public let labels: [String]
    public var buckets: [Double] = []

    public static func named(_ name: String) -> MetricFamily? { byName[name] }
    static let byName = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

    static let requestBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    static let lagBuckets: [Double] = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 21600, 86400]
    static let businessBuckets: [Double] = [60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800]

    public static let all: [MetricFamily] = [
        // HTTP
        .init(name: "waybill_http_request_duration_seconds", kind: .histogram,
              help: "Time to answer an HTTP request, by route pattern, method and status.", labels: ["route", "method", "status"],
              buckets: requestBuckets),
        .init(name: "waybill_http_responses_total", kind: .counter, help: "HTTP responses by status code.", labels: ["code"]),
        // Ingest
        .init(name: "waybill_events_accepted_total", kind: .counter, help: "Business events stored, by source.", labels: ["source"]),
        .init(name: "waybill_events_duplicate_total", kind: .counter,
              help: "Business events dropped as duplicates of a stored (source, id), by source.", labels: ["source"]),
        .init(name: "waybill_events_rejected_total", kind: .counter,
              help: "Business events rejected as invalid, by source and by the field whose rule they broke.", labels: ["source", "reason"]),
        .init(name: "waybill_event_lag_seconds", kind: .histogram,
              help: "Lag from an event's time to its arrival at the server, by source.", labels: ["source"], buckets: lagBuckets),
        .init(name: "waybill_spans_received_total", kind: .counter, help: "OTLP spans received and handed to the store, by service.",
              labels: ["service"]),
        .init(name: "waybill_spans_duplicate_total", kind: .counter, help: "OTLP spans dropped as duplicates of a stored span.", labels: []),
        .init(name: "waybill_spans_rejected_total", kind: .counter, help: "OTLP spans refused as invalid (partial success).", labels: []),
        .init(name: "waybill_request_bodies_rejected_total", kind: .counter, help: "Request bodies refused whole (400/413/415).", labels: []),
        .init(name: "waybill_ingest_throttled_total", kind: .counter, help: "Requests answered 429 because the ingest queue was full.",
              labels: []),
        .init(name: "waybill_store_append_seconds", kind: .histogram,
              help: "Time from handing an append to the store to its commit (queueing included), by signal (events, spans).",
              labels: ["signal"], buckets: requestBuckets),
        .init(name: "waybill_writer_commit_seconds", kind: .histogram,
              help: "Duration of each group commit of the store's writer (one transaction for the appends queued together), by signal.",
              labels: ["signal"], buckets: requestBuckets),
        .init(name: "waybill_ingest_queue_events", kind: .gauge, help: "Events waiting for the group-commit writer.", labels: []),
        // Store
        .init(name: "waybill_store_events", kind: .gauge, help: "Business events in the store.", labels: []),
        .init(name: "waybill_store_orders", kind: .gauge, help: "Orders with facts in the store.", labels: []),
        .init(name: "waybill_store_linked_keys", kind: .gauge, help: "Keys taking part in links.", labels: []),
        .init(name: "waybill_storage_faults_total", kind: .counter,
              help: "Writes that failed with a storage fault that may pass (answered 503), by kind.", labels: ["kind"]),
        .init(name: "waybill_storage_healthy", kind: .gauge,
              help: "Whether the last write succeeded (1) or failed with a storage fault (0).", labels: []),
        .init(name: "waybill_metrics_figures_age_seconds", kind: .gauge,
              help: "Age of the figures read from the store for this scrape (store size, orders, KPIs).", labels: []),
        .init(name: "waybill_metrics_figures_read_seconds", kind: .gauge,
              help: "How long the last read of the store's figures for /metrics took.", labels: []),
        // Alerting
        .init(name: "waybill_alerts", kind: .gauge, help: "Alerts by state.", labels: ["state"]),
        .init(name: "waybill_alert_rule_evaluation_seconds", kind: .gauge, help: "Duration of each rule's last evaluation.", labels: ["rule"]),
        .init(name: "waybill_alert_rule_failing", kind: .gauge, help: "Whether a rule's last evaluation failed (1) or not (0).", labels: ["rule"]),
        .init(name: "waybill_alert_evaluation_seconds", kind: .histogram, help: "Time to evaluate every alert rule once (one tick).",
              labels: [], buckets: requestBuckets),
        .init(name: "waybill_alert_delivery_attempts_total", kind: .counter, help: "Notifications sent to a hook (every attempt), by hook.",
              labels: ["hook"]),
        .init(name: "waybill_alert_delivery_failures_total", kind: .counter,
              help: "Notification attempts that got no 2xx answer (error, timeout, non-2xx), by hook.", labels: ["hook"]),
        // Business
        .init(name: "waybill_open_orders", kind: .gauge,
              help: "Orders not yet invoiced or cancelled, by current state (unknown: no stage seen yet).", labels: ["state"]),
        .init(name: "waybill_orders_overdue", kind: .gauge, help: "Orders overdue now under an SLA alert rule, by rule.", labels: ["rule"]),
        .init(name: "waybill_orders_allocated", kind: .gauge,
              help: "Orders first allocated in the window (1h, 1d) ending now, by warehouse.", labels: ["warehouse", "window"]),
        .init(name: "waybill_fill_rate", kind: .gauge,
              help: "Units allocated at first allocation over units ordered, orders allocated in the window, by warehouse.",
              labels: ["warehouse", "window"]),
        .init(name: "waybill_order_fill_rate", kind: .gauge,
              help: "Share of orders fully allocated at first allocation, orders allocated in the window, by warehouse.",
              labels: ["warehouse", "window"]),
        .init(name: "waybill_shipments", kind: .gauge, help: "Orders shipped in the window (1h, 1d) ending now, by warehouse.",
              labels: ["warehouse", "window"]),
        .init(name: "waybill_allocation_delay_seconds", kind: .histogram,
              help: "Order accepted to first allocated, orders allocated in the window (1h, 1d) ending now, by warehouse.",
              labels: ["warehouse", "window"], buckets: businessBuckets),
        .init(name: "waybill_shipment_lag_seconds", kind: .histogram,
              help: "Order released to shipped, orders shipped in the window (1h, 1d) ending now, by warehouse.",
              labels: ["warehouse", "window"], buckets: businessBuckets),
        .init(name: "waybill_channel_orders_allocated", kind: .gauge,
              help: "Orders first allocated in the window (1h, 1d) ending now, by channel.", labels: ["channel", "window"]),
        .init(name: "waybill_channel_fill_rate", kind: .gauge,
              help: "Units allocated at first allocation over units ordered, orders allocated in the window, by channel.",
              labels: ["channel", "window"]),
        .init(name: "waybill_channel_order_fill_rate", kind: .gauge,
              help: "Share of orders fully allocated at first allocation, orders allocated in the window, by channel.",
              labels: ["channel", "window"]),
    ]
}
