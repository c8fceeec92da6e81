// relaygate dashboard: charts (uPlot) for the overview's live numbers and the usage page.
// No inline script is allowed (CSP), so everything that runs is here.
(function () {
  "use strict";
  var MAX_POINTS = 150;

  function width(el) {
    return Math.max(300, el.clientWidth - 16);
  }

  function liveChart() {
    var el = document.getElementById("rps-chart");
    if (!el || typeof uPlot === "undefined") return;
    var data = [[], [], []];
    var chart = new uPlot({
      width: width(el),
      height: 160,
      title: "Requests/s and p99 latency (this page's polls)",
      scales: { x: { time: true }, ms: { auto: true } },
      series: [
        {},
        { label: "req/s", stroke: "#2f5fd0", width: 2 },
        { label: "p99 ms", stroke: "#b3261e", width: 1, scale: "ms" }
      ],
      axes: [{}, {}, { scale: "ms", side: 1, grid: { show: false } }]
    }, data, el);

    function push() {
      var point = document.getElementById("live-data");
      if (!point) return;
      data[0].push(Date.now() / 1000);
      data[1].push(parseFloat(point.dataset.rps) || 0);
      data[2].push(parseFloat(point.dataset.p99) || 0);
      if (data[0].length > MAX_POINTS) data.forEach(function (s) { s.shift(); });
      chart.setData(data);
    }
    push();
    document.body.addEventListener("htmx:afterSwap", function (event) {
      if (event.detail && event.detail.target && event.detail.target.id === "live") push();
    });
    window.addEventListener("resize", function () { chart.setSize({ width: width(el), height: 160 }); });
  }

  function usageChart() {
    var el = document.getElementById("cost-chart");
    var source = document.getElementById("usage-series");
    if (!el || !source || typeof uPlot === "undefined") return;
    var series = JSON.parse(source.textContent);
    if (!series.days.length) {
      el.textContent = "No usage in this range.";
      el.className += " muted";
      return;
    }
    var xs = series.days.map(function (day) { return Date.parse(day + "T00:00:00Z") / 1000; });
    new uPlot({
      width: width(el),
      height: 200,
      title: "Cost per UTC day (" + series.currency + ") and requests",
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      scales: {
        x: { time: true },
        y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.15 : 1]; } },
        n: { range: function (u, min, max) { return [0, max > 0 ? max * 1.15 : 1]; } }
      },
      series: [
        {},
        { label: "cost " + series.currency, stroke: "#2f5fd0", fill: "rgba(47,95,208,.12)", width: 2,
          points: { show: true } },
        { label: "requests", stroke: "#6b7385", scale: "n", width: 1, points: { show: true, size: 8 } }
      ],
      axes: [{}, {}, { scale: "n", side: 1, grid: { show: false } }]
    }, [xs, series.cost, series.requests], el);
  }

  document.addEventListener("DOMContentLoaded", function () {
    liveChart();
    usageChart();
  });
})();
