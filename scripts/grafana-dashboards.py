#!/usr/bin/env python3
"""Writes dashboards/grafana/operations.json and executive.json (Grafana 10.3+/11, schemaVersion 39).

The JSON files are committed; edit this script and run it again (python3 scripts/grafana-dashboards.py)
rather than editing them by hand, or edit them in Grafana and export. MetricsTests checks every panel's
PromQL with promtool and that every metric a panel uses is exported by a running server.
"""
import json
import os

DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"


def variables(extra=()):
    out = [{
        "name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
        "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": [], "includeAll": False, "multi": False,
    }, {
        "name": "instance", "label": "Server", "type": "query", "datasource": DS,
        "query": {"query": "label_values(waybill_store_events, instance)", "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 1},
        "definition": "label_values(waybill_store_events, instance)",
        "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2, "sort": 1, "current": {}, "options": [], "hide": 0, "regex": "",
    }]
    for name, metric in (("warehouse", "waybill_orders_allocated"), ("channel", "waybill_channel_orders_allocated")):
        q = f"label_values({metric}, {name})"
        out.append({
            "name": name, "label": name.capitalize(), "type": "query", "datasource": DS,
            "query": {"query": q, "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 1},
            "definition": q, "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2, "sort": 1,
            "current": {}, "options": [], "hide": 0, "regex": "",
        })
    return out


class Layout:
    def __init__(self):
        self.panels = []
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def row(self, title):
        if self.x:
            self.y += self.row_h
        self.x, self.row_h = 0, 0
        self.panels.append({"type": "row", "title": title, "collapsed": False, "id": self.next_id, "panels": [],
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}})
        self.next_id += 1
        self.y += 1

    def panel(self, kind, title, targets, unit=None, w=8, h=8, description=None, options=None, min_=None, max_=None):
        if self.x + w > 24:
            self.y += self.row_h
            self.x, self.row_h = 0, 0
        defaults = {}
        if unit:
            defaults["unit"] = unit
        if min_ is not None:
            defaults["min"] = min_
        if max_ is not None:
            defaults["max"] = max_
        p = {
            "type": kind, "title": title, "id": self.next_id, "datasource": DS,
            "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y},
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "targets": [dict({"datasource": DS, "refId": chr(65 + i)}, **t) for i, t in enumerate(targets)],
        }
        if description:
            p["description"] = description
        if options:
            p["options"] = options
        self.panels.append(p)
        self.next_id += 1
        self.x += w
        self.row_h = max(self.row_h, h)


def t(expr, legend="__auto", instant=False):
    d = {"expr": expr, "legendFormat": legend, "range": not instant, "instant": instant}
    return d


I = 'instance=~"$instance"'
WH = f'warehouse=~"$warehouse",{I}'
CH = f'channel=~"$channel",{I}'


def operations():
    L = Layout()
    L.row("HTTP")
    L.panel("timeseries", "Requests per second by route",
            [t(f'sum by (route) (rate(waybill_http_request_duration_seconds_count{{{I}}}[{RATE}]))', "{{route}}")], unit="reqps")
    L.panel("timeseries", "Server errors (5xx) share",
            [t(f'sum(rate(waybill_http_request_duration_seconds_count{{status=~"5..",{I}}}[{RATE}])) '
               f'/ sum(rate(waybill_http_request_duration_seconds_count{{{I}}}[{RATE}]))', "5xx share")], unit="percentunit", min_=0)
    L.panel("timeseries", "p95 latency by route",
            [t(f'histogram_quantile(0.95, sum by (le, route) (rate(waybill_http_request_duration_seconds_bucket{{{I}}}[{RATE}])))', "{{route}}")],
            unit="s")
    L.row("Ingest")
    L.panel("timeseries", "Events stored per second by source",
            [t(f'sum by (source) (rate(waybill_events_accepted_total{{{I}}}[{RATE}]))', "{{source}}")], unit="ops")
    L.panel("timeseries", "Duplicates and rejections per second",
            [t(f'sum by (source) (rate(waybill_events_duplicate_total{{{I}}}[{RATE}]))', "duplicate {{source}}"),
             t(f'sum by (source, reason) (rate(waybill_events_rejected_total{{{I}}}[{RATE}]))', "rejected {{source}} ({{reason}})")], unit="ops")
    L.panel("timeseries", "Lag event time to arrival, p95 by source",
            [t(f'histogram_quantile(0.95, sum by (le, source) (rate(waybill_event_lag_seconds_bucket{{{I}}}[{RATE}])))', "{{source}}")], unit="s")
    L.panel("timeseries", "Spans per second by service",
            [t(f'sum by (service) (rate(waybill_spans_received_total{{{I}}}[{RATE}]))', "{{service}}"),
             t(f'sum(rate(waybill_spans_rejected_total{{{I}}}[{RATE}]))', "rejected")], unit="ops")
    L.panel("timeseries", "Append and group commit p99 by signal",
            [t(f'histogram_quantile(0.99, sum by (le, signal) (rate(waybill_store_append_seconds_bucket{{{I}}}[{RATE}])))', "append {{signal}}"),
             t(f'histogram_quantile(0.99, sum by (le, signal) (rate(waybill_writer_commit_seconds_bucket{{{I}}}[{RATE}])))', "commit {{signal}}")],
            unit="s", description="Append: from the request's hand-off to the store to its commit, queueing included. "
                                   "Commit: one group-commit transaction of the writer.")
    L.panel("timeseries", "Queue depth and throttling",
            [t(f'sum(waybill_ingest_queue_events{{{I}}})', "queued events"),
             t(f'sum(rate(waybill_ingest_throttled_total{{{I}}}[{RATE}]))', "429/s"),
             t(f'sum(rate(waybill_request_bodies_rejected_total{{{I}}}[{RATE}]))', "bodies refused/s")])
    L.row("Store")
    L.panel("stat", "Events stored", [t(f'sum(waybill_store_events{{{I}}})', "events", instant=True)], unit="short", w=6, h=5)
    L.panel("stat", "Orders", [t(f'sum(waybill_store_orders{{{I}}})', "orders", instant=True)], unit="short", w=6, h=5)
    L.panel("stat", "Storage healthy", [t(f'min(waybill_storage_healthy{{{I}}})', "healthy", instant=True)], w=6, h=5,
            description="1 while writes succeed; 0 from a failed write (disk full, I/O error, lock) until one succeeds.")
    L.panel("timeseries", "Storage faults by kind", [t(f'sum by (kind) (increase(waybill_storage_faults_total{{{I}}}[{RATE}]))', "{{kind}}")],
            w=6, h=5)
    L.panel("timeseries", "Age of the store figures in /metrics", [t(f'max(waybill_metrics_figures_age_seconds{{{I}}})', "age")], unit="s",
            w=12, h=6)
    L.panel("timeseries", "Open orders by state", [t(f'sum by (state) (waybill_open_orders{{{I}}})', "{{state}}")], w=12, h=6)
    L.row("Alerting")
    L.panel("stat", "Alerts firing", [t(f'sum(waybill_alerts{{state="firing",{I}}})', "firing", instant=True)], w=6, h=5)
    L.panel("stat", "Rules failing", [t(f'sum(waybill_alert_rule_failing{{{I}}})', "failing", instant=True)], w=6, h=5)
    L.panel("timeseries", "Evaluation time, p95 of a tick",
            [t(f'histogram_quantile(0.95, sum by (le) (rate(waybill_alert_evaluation_seconds_bucket{{{I}}}[{RATE}])))', "p95"),
             t(f'max by (rule) (waybill_alert_rule_evaluation_seconds{{{I}}})', "last {{rule}}")], unit="s", w=12, h=5)
    L.panel("timeseries", "Hook deliveries per second (attempts, failures)",
            [t(f'sum by (hook) (rate(waybill_alert_delivery_attempts_total{{{I}}}[{RATE}]))', "attempts {{hook}}"),
             t(f'sum by (hook) (rate(waybill_alert_delivery_failures_total{{{I}}}[{RATE}]))', "failures {{hook}}")], unit="ops", w=12)
    L.panel("timeseries", "Orders overdue by SLA rule", [t(f'sum by (rule) (waybill_orders_overdue{{{I}}})', "{{rule}}")], w=12)
    return dashboard("waybill-operations", "Waybill: operations", L.panels,
                     "The Waybill server: HTTP, ingest, store, alerting. Metrics from GET /metrics (docs/metrics.md).")


def executive():
    L = Layout()
    L.row("Last day")
    L.panel("stat", "Orders allocated, last day", [t(f'sum(waybill_orders_allocated{{window="1d",{WH}}})', "orders", instant=True)],
            unit="short", w=6, h=5)
    L.panel("stat", "Shipments, last day", [t(f'sum(waybill_shipments{{window="1d",{WH}}})', "shipments", instant=True)], unit="short", w=6, h=5)
    L.panel("stat", "Open orders", [t(f'sum(waybill_open_orders{{{I}}})', "open", instant=True)], unit="short", w=6, h=5)
    L.panel("stat", "Orders overdue (SLA rules)", [t(f'sum(waybill_orders_overdue{{{I}}})', "overdue", instant=True)], unit="short", w=6, h=5)
    L.row("Warehouses")
    L.panel("bargauge", "Fill rate by warehouse, last day",
            [t(f'max by (warehouse) (waybill_fill_rate{{window="1d",{WH}}})', "{{warehouse}}", instant=True)], unit="percentunit",
            min_=0, max_=1, w=12, options={"orientation": "horizontal", "displayMode": "gradient"})
    L.panel("bargauge", "Order fill rate by warehouse, last day",
            [t(f'max by (warehouse) (waybill_order_fill_rate{{window="1d",{WH}}})', "{{warehouse}}", instant=True)], unit="percentunit",
            min_=0, max_=1, w=12, options={"orientation": "horizontal", "displayMode": "gradient"})
    L.panel("timeseries", "Fill rate by warehouse, last hour",
            [t(f'max by (warehouse) (waybill_fill_rate{{window="1h",{WH}}})', "{{warehouse}}")], unit="percentunit", min_=0, max_=1, w=12)
    L.panel("timeseries", "Orders allocated per warehouse, last hour",
            [t(f'sum by (warehouse) (waybill_orders_allocated{{window="1h",{WH}}})', "{{warehouse}}")], unit="short", w=12)
    L.panel("timeseries", "Allocation delay p90 by warehouse, last hour",
            [t(f'histogram_quantile(0.9, sum by (le, warehouse) (waybill_allocation_delay_seconds_bucket{{window="1h",{WH}}}))', "{{warehouse}}")],
            unit="s", w=12, description="Accepted to first allocated, orders allocated in the hour ending at each point.")
    L.panel("timeseries", "Shipment lag p90 by warehouse, last day",
            [t(f'histogram_quantile(0.9, sum by (le, warehouse) (waybill_shipment_lag_seconds_bucket{{window="1d",{WH}}}))', "{{warehouse}}")],
            unit="s", w=12, description="Released to shipped, orders shipped in the day ending at each point.")
    L.panel("table", "Mean allocation delay by warehouse, last day",
            [t(f'sum by (warehouse) (waybill_allocation_delay_seconds_sum{{window="1d",{WH}}}) '
               f'/ sum by (warehouse) (waybill_allocation_delay_seconds_count{{window="1d",{WH}}})', "{{warehouse}}", instant=True)],
            unit="s", w=24, h=7)
    L.row("Channels")
    L.panel("bargauge", "Fill rate by channel, last day",
            [t(f'max by (channel) (waybill_channel_fill_rate{{window="1d",{CH}}})', "{{channel}}", instant=True)], unit="percentunit",
            min_=0, max_=1, w=8, options={"orientation": "horizontal", "displayMode": "gradient"})
    L.panel("bargauge", "Order fill rate by channel, last day",
            [t(f'max by (channel) (waybill_channel_order_fill_rate{{window="1d",{CH}}})', "{{channel}}", instant=True)], unit="percentunit",
            min_=0, max_=1, w=8, options={"orientation": "horizontal", "displayMode": "gradient"})
    L.panel("timeseries", "Orders allocated per channel, last hour",
            [t(f'sum by (channel) (waybill_channel_orders_allocated{{window="1h",{CH}}})', "{{channel}}")], unit="short", w=8)
    return dashboard("waybill-executive", "Waybill: executive", L.panels,
                     "Business figures from the store's KPI rollups (fill rates, delays, shipments) over the last hour and day, "
                     "by warehouse and channel.")


def dashboard(uid, title, panels, description):
    return {
        "uid": uid, "title": title, "description": description, "tags": ["waybill"], "schemaVersion": 39, "version": 1,
        "editable": True, "graphTooltip": 1, "timezone": "browser", "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"}, "timepicker": {},
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
                                  "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}]},
        "templating": {"list": variables()}, "links": [], "panels": panels,
        "__inputs": [], "__requires": [{"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"}],
    }


if __name__ == "__main__":
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "dashboards", "grafana")
    for name, d in (("operations.json", operations()), ("executive.json", executive())):
        with open(os.path.join(here, name), "w") as f:
            json.dump(d, f, indent=2)
            f.write("\n")
        print("wrote", os.path.normpath(os.path.join(here, name)))
