// Waybill pages: drag across a chart with a time axis to show that range. Every such chart is an
// <svg data-brush-href="PAGE?QUERY" data-brush-from="RFC3339" data-brush-to="RFC3339"
// data-brush-x0="N" data-brush-x1="N">, where x0..x1 is the time axis in the chart's own (viewBox)
// units; releasing the drag goes to PAGE?QUERY with from and to set to the range selected (whole
// seconds, UTC). Nothing is fetched: the page is loaded like a link. Without this script (or without
// JavaScript) the charts are pictures and the forms still set from and to.
// A page opened with #brush-check=A,B (fractions of the time axis) drags from A to B on its first chart
// with synthetic pointer events and, instead of leaving, writes where it would go into the chart's
// data-brush-target attribute and keeps the selection drawn: how a headless browser test checks it.
(function () {
  'use strict';
  var SVG = 'http://www.w3.org/2000/svg';

  function iso(ms) { return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z'); }

  /** The page to show for the range [a, b) (milliseconds since the epoch). */
  function target(href, a, b) {
    var u = new URL(href, window.location.href);
    u.searchParams.set('from', iso(Math.floor(a / 1000) * 1000));
    u.searchParams.set('to', iso(Math.max(Math.ceil(b / 1000), Math.floor(a / 1000) + 1) * 1000));
    return u.pathname + u.search;
  }

  function setup(svg) {
    var from = Date.parse(svg.getAttribute('data-brush-from'));
    var to = Date.parse(svg.getAttribute('data-brush-to'));
    var x0 = parseFloat(svg.getAttribute('data-brush-x0'));
    var x1 = parseFloat(svg.getAttribute('data-brush-x1'));
    var href = svg.getAttribute('data-brush-href');
    if (!(to > from) || !(x1 > x0) || !href) return;
    var box = svg.viewBox.baseVal;
    var band = document.createElementNS(SVG, 'rect');
    band.setAttribute('class', 'brush');
    band.setAttribute('y', String(box ? box.y : 0));
    band.setAttribute('height', String(box ? box.height : 0));
    band.setAttribute('width', '0');
    band.setAttribute('fill', 'rgba(29,78,216,0.18)');
    band.setAttribute('pointer-events', 'none');
    svg.appendChild(band);
    var start = null;
    var checking = false;

    function x(ev) {
      var m = svg.getScreenCTM();
      if (!m) return null;
      var p = svg.createSVGPoint();
      p.x = ev.clientX;
      p.y = ev.clientY;
      return Math.min(x1, Math.max(x0, p.matrixTransform(m.inverse()).x));
    }
    function draw(a, b) {
      band.setAttribute('x', String(Math.min(a, b)));
      band.setAttribute('width', String(Math.abs(b - a)));
    }
    function time(v) { return from + (v - x0) / (x1 - x0) * (to - from); }

    svg.addEventListener('pointerdown', function (ev) {
      var v = x(ev);
      if (v === null || ev.button !== 0) return;
      start = v;
      draw(v, v);
      try { if (svg.setPointerCapture) svg.setPointerCapture(ev.pointerId); } catch (e) { /* a synthetic pointer */ }
      ev.preventDefault();
    });
    svg.addEventListener('pointermove', function (ev) {
      if (start === null) return;
      var v = x(ev);
      if (v !== null) draw(start, v);
    });
    svg.addEventListener('pointerup', function (ev) {
      if (start === null) return;
      var a = start, b = x(ev);
      start = null;
      band.setAttribute('width', '0');
      // A click (under 3 units of drag) is no range: a link under it keeps working.
      if (b === null || Math.abs(b - a) < 3) return;
      var url = target(href, time(Math.min(a, b)), time(Math.max(a, b)));
      if (checking) {
        draw(a, b);
        svg.setAttribute('data-brush-target', url);
      } else {
        window.location.assign(url);
      }
    });
    svg.addEventListener('pointercancel', function () { start = null; band.setAttribute('width', '0'); });
    svg.setAttribute('data-brush-ready', '1');

    return function check(fa, fb) {
      var m = svg.getScreenCTM();
      if (!m) return;
      checking = true;
      var y = box ? box.y + box.height / 2 : 0;
      function client(f) {
        var p = svg.createSVGPoint();
        p.x = x0 + f * (x1 - x0);
        p.y = y;
        return p.matrixTransform(m);
      }
      var a = client(fa), b = client(fb);
      var init = function (p) { return { clientX: p.x, clientY: p.y, button: 0, pointerId: 1, bubbles: true }; };
      svg.dispatchEvent(new PointerEvent('pointerdown', init(a)));
      svg.dispatchEvent(new PointerEvent('pointermove', init(b)));
      svg.dispatchEvent(new PointerEvent('pointerup', init(b)));
    };
  }

  var charts = document.querySelectorAll('svg[data-brush-href]');
  var checks = [];
  for (var i = 0; i < charts.length; i++) checks.push(setup(charts[i]));
  var asked = /^#brush-check=([0-9.]+),([0-9.]+)$/.exec(window.location.hash);
  if (asked && checks[0]) checks[0](parseFloat(asked[1]), parseFloat(asked[2]));
})();
