// The console's time-series charts: our own small canvas renderer (no library, see
// docs/console.md#charts). One <canvas> per chart, one path per series, nothing per point
// in the DOM, so thousands of points per series draw in a millisecond or two; the pages
// ask the server for a step that keeps points <= pixels (`charts.step`), so there are
// never many more. Values reach the DOM (legend, tooltip, aria-label) as text only.
//
//   charts.timeSeries(container, { unit, label, height, stacked }) -> { update(data), destroy() }
//     data: { from: ms, to: ms, series: [{ name, points: [[ms, value], ...] }] }
//     the container gets data-points="N" (points drawn, all shown series) after each update.
//   charts.step(fromMs, toMs, widthPx) -> a step in seconds with points <= pixels
//   charts.fromMatrix(queryRangeData, nameFn?) -> [{ name, points, metric }]
//   charts.format(value, unit) -> short text ("12.3 %", "1.2 GiB", ...)
"use strict";

const charts = (() => {
  // Steps a range may get, in seconds: round figures on the clock, the calendar after.
  const NICE_STEPS = [
    10, 15, 20, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600,
    43200, 86400,
  ];
  const DAY = 86400;

  function step(fromMs, toMs, widthPx) {
    const range = Math.max(0, (toMs - fromMs) / 1000);
    const need = Math.max(Math.ceil(range / Math.max(1, Math.floor(widthPx))), 10);
    const nice = NICE_STEPS.find((s) => s >= need);
    return nice !== undefined ? nice : Math.ceil(need / DAY) * DAY;
  }

  // Short text for a value: 3 significant figures or so, in the unit's own scale.
  function format(value, unit) {
    if (value === null || value === undefined || !Number.isFinite(value)) {
      return "no data";
    }
    switch (unit) {
      case "percent": return fixed(value * 100) + " %";
      case "bytes": return scaled(value, 1024, ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]);
      case "bytes/s": return scaled(value, 1024, ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]) + "/s";
      case "seconds": return duration(value);
      default: {
        const a = Math.abs(value);
        if (a >= 1e3) {
          return scaled(value, 1000, ["", "k", "M", "G", "T", "P", "E"]).trim();
        }
        return fixed(value);
      }
    }
  }

  function fixed(v) {
    const a = Math.abs(v);
    if (a === 0) {
      return "0";
    }
    const digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : a >= 0.01 ? 3 : 4;
    // Trailing zeros add nothing: "12" rather than "12.0", "0.5" rather than "0.500".
    return String(Number(v.toFixed(digits)));
  }

  function scaled(v, base, names) {
    let i = 0;
    let x = v;
    while (Math.abs(x) >= base && i < names.length - 1) {
      x /= base;
      i += 1;
    }
    return fixed(x) + " " + names[i];
  }

  function duration(s) {
    const a = Math.abs(s);
    if (a === 0) {
      return "0 s";
    }
    if (a < 1e-3) {
      return fixed(s * 1e6) + " \u00b5s";
    }
    if (a < 1) {
      return fixed(s * 1e3) + " ms";
    }
    if (a < 120) {
      return fixed(s) + " s";
    }
    if (a < 7200) {
      return fixed(s / 60) + " min";
    }
    if (a < 2 * DAY) {
      return fixed(s / 3600) + " h";
    }
    return fixed(s / DAY) + " d";
  }

  // A query_range answer's data as series: ms timestamps, values as numbers ("NaN" and
  // "+Inf" become NaN and Infinity, which are drawn as breaks).
  function fromMatrix(data, nameFn) {
    const name = nameFn || defaultName;
    const result = (data && data.result) || [];
    const vector = data && data.resultType === "vector";
    return result.map((r) => ({
      name: name(r.metric || {}),
      metric: r.metric || {},
      points: vector
        ? [[r.value[0] * 1000, Number(r.value[1])]]
        : (r.values || []).map(([t, v]) => [t * 1000, Number(v)]),
    }));
  }

  // `node_load1` or `device=sda, mode=user`: the metric's own labels, without the host's.
  function defaultName(metric) {
    const labels = Object.entries(metric)
      .filter(([k]) => k !== "__name__" && k !== "agent_id" && k !== "instance")
      .map(([k, v]) => k + "=" + v)
      .join(", ");
    return labels || metric.__name__ || "value";
  }

  // The value axis: about `count` round ticks from lo to hi in the unit's scale.
  function valueTicks(lo, hi, unit, count) {
    if (!(hi > lo)) {
      hi = lo + (unit === "percent" ? 0.01 : 1);
    }
    let scale = 1;
    if (unit === "bytes" || unit === "bytes/s") {
      while (hi / scale >= 1024) {
        scale *= 1024;
      }
    } else if (unit === "percent") {
      scale = 0.01;
    }
    const raw = (hi - lo) / scale / count;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const unitStep = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) * scale;
    const first = Math.floor(lo / unitStep) * unitStep;
    const ticks = [];
    for (let v = first; v < hi + unitStep * 0.999; v += unitStep) {
      ticks.push(Math.abs(v) < unitStep * 1e-9 ? 0 : v);
    }
    return ticks;
  }

  // The time axis: local time, a tick every round interval with at least ~90 px between.
  const TIME_STEPS = [
    60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
  ].map((s) => s * 1000);
  const DAYS = [1, 2, 7, 14];
  const MONTHS = [1, 2, 3, 6, 12];
  const hhmm = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hour12: false });
  const dayMonth = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
  const monthYear = new Intl.DateTimeFormat(undefined, { month: "short", year: "numeric" });
  const full = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false,
  });

  function timeTicks(from, to, width) {
    const span = to - from;
    const fit = Math.max(2, Math.floor(width / 90));
    const ms = TIME_STEPS.find((s) => span / s <= fit);
    if (ms !== undefined) {
      // Aligned to local time: the zone's offset moves the grid onto round local hours.
      const offset = new Date(from).getTimezoneOffset() * 60000;
      const ticks = [];
      for (let t = Math.ceil((from - offset) / ms) * ms + offset; t <= to; t += ms) {
        const d = new Date(t);
        const midnight = d.getHours() === 0 && d.getMinutes() === 0;
        ticks.push([t, midnight && span > DAY * 1000 / 2 ? dayMonth.format(d) : hhmm.format(d)]);
      }
      return ticks;
    }
    const days = DAYS.find((n) => span / (n * DAY * 1000) <= fit);
    if (days !== undefined) {
      return calendarTicks(from, to, (d) => d.setDate(d.getDate() + days), dayMonth, days === 7 || days === 14);
    }
    const months = MONTHS.find((n) => span / (n * 30 * DAY * 1000) <= fit) || 12;
    return calendarTicks(from, to, (d) => d.setMonth(d.getMonth() + months), monthYear, false, true);
  }

  function calendarTicks(from, to, advance, fmt, weekly, monthly) {
    const d = new Date(from);
    d.setHours(0, 0, 0, 0);
    if (monthly) {
      d.setDate(1);
    }
    if (weekly) {
      // Mondays.
      d.setDate(d.getDate() - ((d.getDay() + 6) % 7));
    }
    const ticks = [];
    for (let guard = 0; guard < 500 && d.getTime() <= to; guard += 1) {
      if (d.getTime() >= from) {
        ticks.push([d.getTime(), fmt.format(d)]);
      }
      advance(d);
    }
    return ticks;
  }

  function cssVar(el, name, fallback) {
    const v = getComputedStyle(el).getPropertyValue(name).trim();
    return v || fallback;
  }

  const PALETTE_SIZE = 8;

  function timeSeries(container, opts) {
    const o = Object.assign({ unit: "", label: "Chart", height: 200, stacked: false }, opts || {});
    const legend = document.createElement("div");
    legend.className = "chart-legend";
    legend.setAttribute("role", "group");
    legend.setAttribute("aria-label", o.label + ": series shown");
    const box = document.createElement("div");
    box.className = "chart-box";
    const canvas = document.createElement("canvas");
    canvas.setAttribute("role", "img");
    canvas.tabIndex = 0;
    canvas.style.height = o.height + "px";
    const tip = document.createElement("div");
    tip.className = "chart-tip";
    tip.hidden = true;
    tip.setAttribute("role", "status");
    tip.setAttribute("aria-live", "polite");
    box.append(canvas, tip);
    container.classList.add("chart");
    container.append(box, legend);

    const state = {
      data: { from: 0, to: 0, series: [] },
      hidden: new Set(),
      times: [],
      cursor: null,
      width: 0,
      geom: null,
      frame: 0,
    };

    function colour(i) {
      return cssVar(container, "--chart-" + ((i % PALETTE_SIZE) + 1), "#1f5fa8");
    }

    // Legend and tooltip swatches take their colour from the style sheet, so that they
    // follow the colour scheme by themselves.
    function swatchClass(i) {
      return "chart-swatch chart-c" + ((i % PALETTE_SIZE) + 1);
    }

    function shown() {
      return state.data.series
        .map((s, i) => ({ s, i }))
        .filter(({ s }) => !state.hidden.has(s.name));
    }

    // The step of the data: the smallest spacing of any series, which on a query_range
    // answer is its step; a wider spacing than 2.5 steps is a gap, drawn as a break.
    function dataStep(series) {
      let best = Infinity;
      for (const s of series) {
        for (let k = 1; k < s.points.length; k += 1) {
          const d = s.points[k][0] - s.points[k - 1][0];
          if (d > 0 && d < best) {
            best = d;
          }
        }
      }
      return best;
    }

    // Stacked: each series' value added to those below it at the same time. Times where a
    // series has no finite value add nothing below others and break its own area.
    function stackedValues(list) {
      const below = new Map();
      return list.map(({ s }) => s.points.map(([t, v]) => {
        const base = below.get(t) || 0;
        if (!Number.isFinite(v)) {
          return [t, NaN, base];
        }
        below.set(t, base + v);
        return [t, base + v, base];
      }));
    }

    function layout(ctx, width, height, list, values) {
      let lo = Infinity;
      let hi = -Infinity;
      for (const pts of values) {
        for (const p of pts) {
          if (Number.isFinite(p[1])) {
            lo = Math.min(lo, p[1]);
            hi = Math.max(hi, p[1]);
          }
        }
      }
      if (!Number.isFinite(lo)) {
        lo = 0;
        hi = 1;
      }
      lo = Math.min(lo, 0);
      const ticks = valueTicks(lo, hi, o.unit, Math.max(2, Math.floor(height / 50)));
      const labels = ticks.map((v) => format(v, o.unit));
      const left = Math.ceil(Math.max(...labels.map((l) => ctx.measureText(l).width))) + 10;
      const plot = { x: left, y: 8, w: Math.max(10, width - left - 10), h: Math.max(10, height - 30) };
      const yMin = Math.min(lo, ticks[0]);
      const yMax = Math.max(hi, ticks[ticks.length - 1]);
      const { from, to } = state.data;
      return {
        plot, ticks, labels, list, values,
        x: (t) => plot.x + ((t - from) / Math.max(1, to - from)) * plot.w,
        y: (v) => plot.y + plot.h - ((v - yMin) / Math.max(1e-300, yMax - yMin)) * plot.h,
      };
    }

    function draw() {
      state.frame = 0;
      const width = canvas.clientWidth;
      const height = o.height;
      if (width === 0) {
        return;
      }
      const dpr = window.devicePixelRatio || 1;
      if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
        canvas.width = Math.round(width * dpr);
        canvas.height = Math.round(height * dpr);
      }
      const ctx = canvas.getContext("2d");
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, width, height);
      const fg = cssVar(container, "--fg", "#1d2329");
      ctx.font = "12px system-ui, sans-serif";
      const list = shown();
      const values = o.stacked
        ? stackedValues(list)
        : list.map(({ s }) => s.points.map(([t, v]) => [t, v, 0]));
      const points = values.reduce((n, pts) => n + pts.filter((p) => Number.isFinite(p[1])).length, 0);
      if (points === 0) {
        state.geom = null;
        ctx.fillStyle = fg;
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        const none = state.data.series.length && !list.length ? "all series hidden" : "no data in this range";
        ctx.fillText(none, width / 2, height / 2);
        return;
      }
      const g = layout(ctx, width, height, list, values);
      state.geom = g;
      grid(ctx, g, fg);
      const gapMs = 2.5 * dataStep(list.map(({ s }) => s));
      list.forEach(({ i }, k) => series(ctx, g, values[k], colour(i), gapMs));
      if (state.cursor !== null) {
        crosshair(ctx, g, fg);
      }
    }

    function grid(ctx, g, fg) {
      const { plot } = g;
      ctx.strokeStyle = fg;
      ctx.globalAlpha = 0.12;
      ctx.lineWidth = 1;
      ctx.beginPath();
      for (const v of g.ticks) {
        const y = Math.round(g.y(v)) + 0.5;
        ctx.moveTo(plot.x, y);
        ctx.lineTo(plot.x + plot.w, y);
      }
      const times = timeTicks(state.data.from, state.data.to, plot.w);
      for (const [t] of times) {
        const x = Math.round(g.x(t)) + 0.5;
        ctx.moveTo(x, plot.y);
        ctx.lineTo(x, plot.y + plot.h);
      }
      ctx.stroke();
      ctx.globalAlpha = 0.8;
      ctx.fillStyle = fg;
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      g.ticks.forEach((v, k) => ctx.fillText(g.labels[k], plot.x - 6, g.y(v)));
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      let lastEnd = -Infinity;
      for (const [t, text] of times) {
        const x = g.x(t);
        const w = ctx.measureText(text).width;
        if (x - w / 2 > lastEnd + 4 && x + w / 2 <= plot.x + plot.w + 8) {
          ctx.fillText(text, x, plot.y + plot.h + 6);
          lastEnd = x + w / 2;
        }
      }
      ctx.globalAlpha = 1;
    }

    // One path per series: a line, broken where points are missing, non-finite or further
    // apart than `gapMs`; stacked series also fill down to the series below.
    function series(ctx, g, pts, colour, gapMs) {
      const runs = [];
      let run = [];
      for (const p of pts) {
        const prev = run[run.length - 1];
        if (!Number.isFinite(p[1]) || (prev && p[0] - prev[0] > gapMs)) {
          if (run.length) {
            runs.push(run);
          }
          run = Number.isFinite(p[1]) ? [p] : [];
        } else {
          run.push(p);
        }
      }
      if (run.length) {
        runs.push(run);
      }
      ctx.strokeStyle = colour;
      ctx.fillStyle = colour;
      ctx.lineWidth = 1.5;
      ctx.lineJoin = "bevel";
      if (o.stacked) {
        ctx.globalAlpha = 0.35;
        ctx.beginPath();
        for (const r of runs) {
          ctx.moveTo(g.x(r[0][0]), g.y(r[0][1]));
          for (const p of r) {
            ctx.lineTo(g.x(p[0]), g.y(p[1]));
          }
          for (let k = r.length - 1; k >= 0; k -= 1) {
            ctx.lineTo(g.x(r[k][0]), g.y(r[k][2]));
          }
          ctx.closePath();
        }
        ctx.fill();
        ctx.globalAlpha = 1;
      }
      ctx.beginPath();
      const dots = [];
      for (const r of runs) {
        if (r.length === 1) {
          dots.push(r[0]);
        } else {
          line(ctx, g, r);
        }
      }
      ctx.stroke();
      // A point alone between gaps would have no line at all: a dot.
      ctx.beginPath();
      for (const p of dots) {
        ctx.moveTo(g.x(p[0]) + 2.5, g.y(p[1]));
        ctx.arc(g.x(p[0]), g.y(p[1]), 2.5, 0, 2 * Math.PI);
      }
      ctx.fill();
    }

    // A run of points as a line, at most four vertices per pixel column (the first, the
    // lowest, the highest and the last point in it): the same picture as every point,
    // however many more points than pixels there are.
    function line(ctx, g, r) {
      let col = NaN;
      let first = 0;
      let lo = 0;
      let hi = 0;
      let last = 0;
      const flush = () => {
        for (const v of [first, lo, hi, last]) {
          ctx.lineTo(col, v);
        }
      };
      ctx.moveTo(g.x(r[0][0]), g.y(r[0][1]));
      for (const p of r) {
        const x = Math.round(g.x(p[0]));
        const y = g.y(p[1]);
        if (x !== col) {
          if (!Number.isNaN(col)) {
            flush();
          }
          col = x;
          first = lo = hi = last = y;
        } else {
          lo = Math.min(lo, y);
          hi = Math.max(hi, y);
          last = y;
        }
      }
      flush();
    }

    function crosshair(ctx, g, fg) {
      const t = state.times[state.cursor];
      if (t === undefined) {
        return;
      }
      const x = Math.round(g.x(t)) + 0.5;
      ctx.strokeStyle = fg;
      ctx.globalAlpha = 0.5;
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(x, g.plot.y);
      ctx.lineTo(x, g.plot.y + g.plot.h);
      ctx.stroke();
      ctx.globalAlpha = 1;
      g.list.forEach(({ i }, k) => {
        const p = g.values[k].find((q) => q[0] === t);
        if (p && Number.isFinite(p[1])) {
          ctx.fillStyle = colour(i);
          ctx.beginPath();
          ctx.arc(x, g.y(p[1]), 3, 0, 2 * Math.PI);
          ctx.fill();
        }
      });
    }

    function redraw() {
      if (!state.frame) {
        state.frame = requestAnimationFrame(draw);
      }
    }

    // The values at the cursor's time, as text in the tooltip.
    function showTip() {
      const t = state.times[state.cursor];
      if (t === undefined || !state.geom) {
        tip.hidden = true;
        return;
      }
      const lines = [document.createElement("strong")];
      lines[0].textContent = full.format(new Date(t));
      for (const { s, i } of shown()) {
        const p = s.points.find((q) => q[0] === t);
        const row = document.createElement("div");
        const sw = document.createElement("span");
        sw.className = swatchClass(i);
        row.append(sw, s.name + ": " + format(p ? p[1] : NaN, o.unit));
        lines.push(row);
      }
      tip.replaceChildren(...lines);
      tip.hidden = false;
      const x = state.geom.x(t);
      const boxW = box.clientWidth;
      const tipW = tip.offsetWidth;
      tip.style.left = Math.max(0, x + 12 + tipW > boxW ? x - 12 - tipW : x + 12) + "px";
      tip.style.top = "4px";
    }

    function setCursor(index) {
      if (!state.times.length) {
        state.cursor = null;
      } else {
        state.cursor = Math.max(0, Math.min(state.times.length - 1, index));
      }
      showTip();
      redraw();
    }

    function nearest(t) {
      const a = state.times;
      let lo = 0;
      let hi = a.length - 1;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (a[mid] <= t) {
          lo = mid;
        } else {
          hi = mid;
        }
      }
      return Math.abs(a[hi] - t) < Math.abs(a[lo] - t) ? hi : lo;
    }

    function onMove(e) {
      const g = state.geom;
      if (!g || !state.times.length) {
        return;
      }
      const rect = canvas.getBoundingClientRect();
      const x = e.clientX - rect.left;
      const { from, to } = state.data;
      setCursor(nearest(from + ((x - g.plot.x) / g.plot.w) * (to - from)));
    }

    function clearCursor() {
      state.cursor = null;
      tip.hidden = true;
      redraw();
    }

    function onKey(e) {
      const n = state.times.length;
      const at = state.cursor === null ? n - 1 : state.cursor;
      const moves = {
        ArrowLeft: at - 1, ArrowRight: at + 1, PageUp: at - 10, PageDown: at + 10, Home: 0, End: n - 1,
      };
      if (e.key in moves) {
        e.preventDefault();
        setCursor(moves[e.key]);
      } else if (e.key === "Escape") {
        clearCursor();
      }
    }

    function latestText(s) {
      for (let k = s.points.length - 1; k >= 0; k -= 1) {
        if (Number.isFinite(s.points[k][1])) {
          return format(s.points[k][1], o.unit);
        }
      }
      return "no data";
    }

    function renderLegend() {
      const buttons = state.data.series.map((s, i) => {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "chart-key";
        b.setAttribute("aria-pressed", String(!state.hidden.has(s.name)));
        const sw = document.createElement("span");
        sw.className = swatchClass(i);
        const value = document.createElement("span");
        value.className = "chart-key-value";
        value.textContent = latestText(s);
        b.append(sw, s.name + " ", value);
        b.addEventListener("click", () => {
          if (state.hidden.has(s.name)) {
            state.hidden.delete(s.name);
          } else {
            state.hidden.add(s.name);
          }
          b.setAttribute("aria-pressed", String(!state.hidden.has(s.name)));
          afterChange();
        });
        return b;
      });
      legend.replaceChildren(...buttons);
      legend.hidden = buttons.length === 0;
    }

    function summary() {
      const list = state.data.series;
      if (!list.some((s) => s.points.some((p) => Number.isFinite(p[1])))) {
        return o.label + ": no data in this range";
      }
      const parts = list.slice(0, 8).map((s) => s.name + " " + latestText(s));
      const more = list.length > 8 ? ", and " + (list.length - 8) + " more series" : "";
      return o.label + ", latest values: " + parts.join(", ") + more;
    }

    function afterChange() {
      const times = new Set();
      let points = 0;
      for (const { s } of shown()) {
        for (const p of s.points) {
          if (Number.isFinite(p[1])) {
            times.add(p[0]);
            points += 1;
          }
        }
      }
      state.times = [...times].sort((a, b) => a - b);
      if (state.cursor !== null) {
        state.cursor = Math.min(state.cursor, state.times.length - 1);
        if (state.cursor < 0) {
          state.cursor = null;
        }
        showTip();
      }
      container.dataset.points = String(points);
      canvas.setAttribute("aria-label", summary());
      // Drawn now rather than at the next frame, so that data-points means drawn.
      if (state.frame) {
        cancelAnimationFrame(state.frame);
      }
      draw();
    }

    function update(data) {
      const series = ((data && data.series) || []).map((s) => ({
        name: String(s.name),
        points: (s.points || []).slice().sort((a, b) => a[0] - b[0]),
      }));
      let from = data && Number.isFinite(data.from) ? data.from : Infinity;
      let to = data && Number.isFinite(data.to) ? data.to : -Infinity;
      if (!Number.isFinite(from) || !Number.isFinite(to)) {
        for (const s of series) {
          for (const [t] of s.points) {
            from = Math.min(from, t);
            to = Math.max(to, t);
          }
        }
      }
      state.data = { from: Number.isFinite(from) ? from : 0, to: Number.isFinite(to) ? to : 1, series };
      renderLegend();
      afterChange();
    }

    canvas.addEventListener("pointermove", onMove);
    canvas.addEventListener("pointerdown", onMove);
    canvas.addEventListener("pointerleave", clearCursor);
    canvas.addEventListener("keydown", onKey);
    canvas.addEventListener("focus", () => setCursor(state.cursor === null ? state.times.length - 1 : state.cursor));
    canvas.addEventListener("blur", clearCursor);
    const resized = new ResizeObserver(() => {
      if (canvas.clientWidth !== state.width) {
        state.width = canvas.clientWidth;
        redraw();
      }
    });
    resized.observe(canvas);
    const scheme = window.matchMedia("(prefers-color-scheme: dark)");
    const recolour = () => redraw();
    scheme.addEventListener("change", recolour);
    update({ from: 0, to: 0, series: [] });

    return {
      update,
      destroy() {
        resized.disconnect();
        scheme.removeEventListener("change", recolour);
        if (state.frame) {
          cancelAnimationFrame(state.frame);
        }
        box.remove();
        legend.remove();
        container.classList.remove("chart");
        delete container.dataset.points;
      },
    };
  }

  return { timeSeries, step, fromMatrix, format };
})();
