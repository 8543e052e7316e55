import Foundation
import Hummingbird
import Mustache
import NIOCore
import WaybillModel

/// Markup the server made itself (an SVG chart, a fragment of a page) that a template inserts as it is.
/// It is the only kind of value a template may insert unescaped (`{{{nameSVG}}}` / `{{{nameHTML}}}`;
/// `PageRenderer` refuses a template that inserts any other name unescaped). Make one only from markup
/// whose every text from data went through `HTMLText.escape` (as `SVGChart` does).
struct TrustedHTML: MustacheCustomRenderable, Sendable, Equatable {
    let markup: String
    init(escapedMarkup: String) { markup = escapedMarkup }
    var renderText: String { markup }
    var isNull: Bool { markup.isEmpty }
}

/// The pages' templates (`Resources/templates/*.mustache`), parsed once at start.
///
/// - Every page is a template that extends `layout` (`{{<layout}}{{$content}}…{{/content}}{{/layout}}`):
///   the layout draws the header with the navigation and the search box (any order id or linked key,
///   to `/search?key=`, which redirects to `/orders/{key}`), the style sheet (`style`), and an optional
///   `<meta http-equiv="refresh">` when the page model has `refreshSeconds` (auto-refresh needs no script).
/// - A page model is a Swift value (struct, array, dictionary) with a `title`; templates read its fields
///   by name. `{{name}}` HTML-escapes (the library's default content type is HTML), so text from events,
///   spans and parameters is escaped without anyone thinking of it. Unescaped output (`{{{x}}}`, `{{& x}}`)
///   is allowed only for names ending in `SVG` or `HTML`, which by convention hold `TrustedHTML`.
/// - Links are built in Swift with `URLText.pathSegment` / `URLText.query` and passed as text (escaped).
final class PageRenderer: Sendable {
    let library: MustacheLibrary
    let directory: String

    /// Why the templates could not be loaded: the file and what was wrong.
    struct LoadError: Error, CustomStringConvertible {
        let file: String
        let message: String
        var description: String { "\(file): \(message)" }
    }

    /// The `.mustache` files of a folder.
    convenience init(directory: String) throws {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".mustache") }
        var files: [(name: String, text: String)] = []
        for name in names {
            let path = (directory as NSString).appendingPathComponent(name)
            do { files.append((name, try String(contentsOfFile: path, encoding: .utf8))) } catch { throw LoadError(file: path, message: "\(error)") }
        }
        try self.init(files: files, folder: directory)
    }

    /// Templates given as (file name, text); `folder` names where they come from in errors.
    init(files: [(name: String, text: String)], folder: String) throws {
        self.directory = folder
        let files = files.filter { $0.name.hasSuffix(".mustache") }.sorted { $0.name < $1.name }
        guard files.contains(where: { $0.name == "layout.mustache" }) else { throw LoadError(file: folder, message: "no layout.mustache in the templates folder") }
        var templates: [String: MustacheTemplate] = [:]
        for (name, text) in files {
            let path = (folder as NSString).appendingPathComponent(name)
            if let bad = Self.unescapedNames(text).first(where: { !($0.hasSuffix("SVG") || $0.hasSuffix("HTML")) }) {
                throw LoadError(file: path, message: "inserts '\(bad)' unescaped; only names ending in SVG or HTML (TrustedHTML) may be")
            }
            do { templates[String(name.dropLast(".mustache".count))] = try MustacheTemplate(string: text) } catch {
                throw LoadError(file: path, message: "\(error)")
            }
        }
        library = MustacheLibrary(templates: templates)
    }

    /// The names a template inserts without escaping: `{{{name}}}` and `{{& name}}`.
    static func unescapedNames(_ text: String) -> [String] {
        var names: [String] = []
        var rest = Substring(text)
        while let open = rest.range(of: "{{") {
            rest = rest[open.upperBound...]
            if rest.hasPrefix("{") {
                guard let close = rest.range(of: "}}}") else { break }
                names.append(rest[rest.index(after: rest.startIndex)..<close.lowerBound].trimmingCharacters(in: .whitespaces))
                rest = rest[close.upperBound...]
            } else if rest.hasPrefix("&") {
                guard let close = rest.range(of: "}}") else { break }
                names.append(rest[rest.index(after: rest.startIndex)..<close.lowerBound].trimmingCharacters(in: .whitespaces))
                rest = rest[close.upperBound...]
            }
        }
        return names
    }

    func render(_ template: String, _ model: Any) -> String {
        library.render(model, withTemplate: template) ?? "template \(template) is missing"
    }

    /// A page as the response (`text/html`; the security headers middleware adds the CSP).
    func page(_ template: String, _ model: Any, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "text/html; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(string: render(template, model))))
    }

    /// The shipped templates (compiled into the binary), loaded once; a template that fails to load gives
    /// an error page naming the cause.
    static let shipped: Result<PageRenderer, LoadError> = {
        do { return .success(try PageRenderer(files: ShippedResources.files("templates"), folder: "templates")) } catch let e as LoadError {
            return .failure(e)
        } catch {
            return .failure(LoadError(file: "templates", message: "\(error)"))
        }
    }()
}

/// The files the server reads at run time (`Resources/templates`, `Resources/dashboards/overview.yaml`, the
/// alert rules of `Resources/alerts`), compiled into the binary by `scripts/embed-resources.py`
/// (`EmbeddedResources.swift`), so that the binary runs wherever it is copied, on its own.
enum ShippedResources {
    /// The files of one folder, as (file name, text), sorted by name.
    static func files(_ folder: String) -> [(name: String, text: String)] {
        EmbeddedResources.files.compactMap { path, text in
            path.hasPrefix(folder + "/") ? (String(path.dropFirst(folder.count + 1)), text) : nil
        }.sorted { $0.name < $1.name }
    }

    /// One file, by its path under `Resources` (`templates/brush.js`).
    static func file(_ path: String) -> String? { EmbeddedResources.files[path] }
}

extension WebPages {
    /// The shipped templates, or the reason they are missing as a plain page (500). A page showing a refused
    /// parameter answers 400 (`status`), still as the page with its form and the reason.
    static func render(_ template: String, _ model: Any, status: HTTPResponse.Status = .ok) -> Response {
        switch PageRenderer.shipped {
        case .success(let r): return r.page(template, model, status: status)
        case .failure(let e):
            return Response(status: .internalServerError, headers: [.contentType: "text/plain; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: "waybill cannot render pages: \(e)\n")))
        }
    }
}
