import WaybillModel

/// Inline SVG charts for the pages (no script, no external file): every text from data is escaped, every
/// number is formatted here, so the result is `TrustedHTML`. Drawn in a `viewBox` and scaled by CSS.
enum SVGChart {
    /// Coordinates with one decimal, without locale.
    static func n(_ v: Double) -> String {
        guard v.isFinite else { return "0" }
        let r = (v * 10).rounded() / 10
        return r == r.rounded() ? String(Int64(r)) : String(r)
    }

    /// What dragging across a chart selects (`brush.js`, served at `/assets/brush.js`): the chart's x
    /// range `x0...x1` (viewBox units) is the time `from...to`; releasing goes to `href` with `from` and
    /// `to` set to the range dragged. Without the script the chart is a picture.
    struct Brush {
        var href: String
        var from: Micros
        var to: Micros

        func attributes(x0: Double, x1: Double) -> String {
            guard to > from else { return "" }
            return " data-brush-href=\"\(HTMLText.escape(href))\" data-brush-from=\"\(RFC3339.format(from))\" data-brush-to=\"\(RFC3339.format(to))\""
                + " data-brush-x0=\"\(n(x0))\" data-brush-x1=\"\(n(x1))\""
        }
    }

    /// A sparkline of values in order (nil: no value there; the line breaks), scaled to its own range;
    /// with `brush`, the first point is at its `from` and the last at its `to`.
    static func sparkline(_ values: [Double?], label: String, brush: Brush? = nil, width: Double = 200, height: Double = 36) -> TrustedHTML {
        let present = values.compactMap { $0 }
        guard let lo = present.min(), let hi = present.max(), values.count > 1 else {
            return TrustedHTML(escapedMarkup: "<svg class=\"spark\" viewBox=\"0 0 \(n(width)) \(n(height))\" role=\"img\" aria-label=\"\(HTMLText.escape(label)): no data\">"
                               + "<line x1=\"0\" y1=\"\(n(height - 1))\" x2=\"\(n(width))\" y2=\"\(n(height - 1))\" stroke=\"#ddd\" stroke-width=\"1\"></line></svg>")
        }
        let span = hi - lo
        let dx = width / Double(values.count - 1)
        var d = ""
        var pen = false
        for (i, v) in values.enumerated() {
            guard let v else { pen = false; continue }
            let y = span == 0 ? height / 2 : (height - 2) - (v - lo) / span * (height - 4)
            d += (pen ? "L" : "M") + n(Double(i) * dx) + " " + n(y)
            pen = true
        }
        var dots = ""
        if let (i, v) = values.enumerated().reversed().first(where: { $0.element != nil }).map({ ($0.offset, $0.element!) }) {
            let y = span == 0 ? height / 2 : (height - 2) - (v - lo) / span * (height - 4)
            dots = "<circle cx=\"\(n(Double(i) * dx))\" cy=\"\(n(y))\" r=\"2\" fill=\"#1d4ed8\"></circle>"
        }
        return TrustedHTML(escapedMarkup: "<svg class=\"spark\" viewBox=\"-2 0 \(n(width + 4)) \(n(height))\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"\(HTMLText.escape(label))\"\(brush?.attributes(x0: 0, x1: width) ?? "")>"
                           + "<path d=\"\(d)\" fill=\"none\" stroke=\"#1d4ed8\" stroke-width=\"1.5\" stroke-linejoin=\"round\"></path>\(dots)</svg>")
    }

    /// A line chart of several series over time with a time axis and a value axis (labels formatted by `format`).
    struct Series {
        var name: String
        var points: [(t: Micros, v: Double?)]
    }

    static let palette = ["#1d4ed8", "#b45309", "#15803d", "#b91c1c", "#7c3aed", "#0e7490", "#be185d", "#4d7c0f"]

    static func lines(_ series: [Series], from: Micros, to: Micros, label: String, brushHref: String? = nil, format: (Double) -> String,
                      width: Double = 900, height: Double = 220) -> TrustedHTML {
        let left = 64.0, right = 12.0, top = 10.0, bottom = 24.0
        let w = width - left - right, h = height - top - bottom
        let values = series.flatMap { $0.points.compactMap(\.v) }
        var lo = min(0, values.min() ?? 0), hi = values.max() ?? 1
        if hi == lo { hi = lo + 1 }
        lo = min(lo, 0)
        func x(_ t: Micros) -> Double { left + Double(t - from) / Double(max(1, to - from)) * w }
        func y(_ v: Double) -> Double { top + h - (v - lo) / (hi - lo) * h }
        let brush = brushHref.map { Brush(href: $0, from: from, to: to).attributes(x0: left, x1: width - right) } ?? ""
        var s = "<svg class=\"chart\" viewBox=\"0 0 \(n(width)) \(n(height))\" role=\"img\" aria-label=\"\(HTMLText.escape(label))\"\(brush)>"
        for k in 0...4 {
            let v = lo + (hi - lo) * Double(k) / 4
            s += "<line x1=\"\(n(left))\" x2=\"\(n(width - right))\" y1=\"\(n(y(v)))\" y2=\"\(n(y(v)))\" stroke=\"#eee\" stroke-width=\"1\"></line>"
            s += "<text x=\"\(n(left - 6))\" y=\"\(n(y(v) + 4))\" text-anchor=\"end\" fill=\"#777\">\(HTMLText.escape(format(v)))</text>"
        }
        for k in 0...4 {
            let t = from + (to - from) * Micros(k) / 4
            let text = String(RFC3339.format(t).prefix(16)).replacingOccurrences(of: "T", with: " ")
            s += "<text x=\"\(n(x(t)))\" y=\"\(n(height - 6))\" text-anchor=\"\(k == 0 ? "start" : k == 4 ? "end" : "middle")\" fill=\"#777\">\(HTMLText.escape(text))</text>"
        }
        for (i, se) in series.enumerated() {
            var d = ""
            var pen = false
            for p in se.points {
                guard let v = p.v else { pen = false; continue }
                d += (pen ? "L" : "M") + n(x(p.t)) + " " + n(y(v))
                pen = true
            }
            let color = palette[i % palette.count]
            s += "<path d=\"\(d)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.8\" stroke-linejoin=\"round\"><title>\(HTMLText.escape(se.name))</title></path>"
            for p in se.points where p.v != nil && se.points.count <= 60 {
                s += "<circle cx=\"\(n(x(p.t)))\" cy=\"\(n(y(p.v!)))\" r=\"2.2\" fill=\"\(color)\"><title>\(HTMLText.escape(se.name + " " + RFC3339.format(p.t) + ": " + format(p.v!)))</title></circle>"
            }
        }
        return TrustedHTML(escapedMarkup: s + "</svg>")
    }
}
