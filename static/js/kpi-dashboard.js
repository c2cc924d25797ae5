/* Officials' dashboard: draws the report embedded in the page with ECharts.
   Every number comes from the same report the tables and files are made of. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var report = data.report;
  var zh = (document.documentElement.lang || "").indexOf("zh") === 0;
  var months = report.monthly.map(function (m) { return m.month; });
  var tierKeys = ["1", "2", "3", "4", "5", "0"];
  var charts = [];

  function num(value) { return value === null ? null : Number(value); }
  function compact(value) {
    var units = zh ? [[1e8, "亿"], [1e4, "万"]] : [[1e9, "B"], [1e6, "M"], [1e3, "k"]];
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(value) >= units[i][0]) {
        return +(value / units[i][0]).toFixed(1) + units[i][1];
      }
    }
    return String(value);
  }
  var compactAxis = { type: "value", axisLabel: { formatter: compact } };
  function label(key) { return report.definitions[key].label; }
  function draw(id, option) {
    var node = document.getElementById(id);
    if (!node) { return null; }
    var chart = echarts.init(node, null, { renderer: "canvas" });
    var full = Object.assign({ animation: false, tooltip: { trigger: "axis" } }, option);
    // Tooltips drawn on the canvas: ECharts' HTML tooltips carry style
    // attributes, which the Content-Security-Policy refuses.
    full.tooltip = Object.assign({ renderMode: "richText" }, full.tooltip);
    chart.setOption(full);
    charts.push(chart);
    node.setAttribute("data-rendered", "true");
    return chart;
  }

  draw("chart-volume", {
    legend: { top: 0 },
    grid: { left: 70, right: 16, top: 36, bottom: 28 },
    xAxis: { type: "category", data: months },
    yAxis: compactAxis,
    series: [
      { name: label("tokens_human"), type: "bar", stack: "tokens",
        data: report.monthly.map(function (m) { return m.tokens_human; }) },
      { name: label("tokens_machine"), type: "bar", stack: "tokens",
        data: report.monthly.map(function (m) { return m.tokens_machine; }) }
    ]
  });

  draw("chart-revenue-tier", {
    legend: { top: 0 },
    grid: { left: 70, right: 16, top: 36, bottom: 28 },
    xAxis: { type: "category", data: months },
    yAxis: { type: "value", name: "¥", axisLabel: { formatter: compact } },
    series: tierKeys.map(function (tier) {
      return { name: data.tiers[tier], type: "bar", stack: "revenue",
        data: report.monthly.map(function (m) { return num(m.revenue_by_tier[tier].revenue); }) };
    })
  });

  var byTier = report.by_tier;
  var rptSeries = [{ name: label("revenue_per_1k"), type: "bar",
    data: byTier.map(function (t) { return num(t.revenue_per_1k); }) }];
  if (report.compare !== "none") {
    rptSeries.push({ name: zh ? "对比期" : "Comparison", type: "bar",
      data: byTier.map(function (t) { return num(t.compare_revenue_per_1k); }) });
  }
  draw("chart-rpt", {
    legend: { top: 0 },
    tooltip: { trigger: "axis", valueFormatter: function (v) { return v === null ? "—" : "¥" + v.toFixed(4); } },
    grid: { left: 70, right: 16, top: 36, bottom: 28 },
    // Every tier labelled (ECharts hides alternate labels that might touch),
    // the long "machine" one wrapped under its bar.
    xAxis: { type: "category", data: byTier.map(function (t) { return data.tiers[String(t.tier)]; }),
      axisLabel: { interval: 0, hideOverlap: false, width: 70, overflow: "break" } },
    yAxis: { type: "value", name: "¥ / 1k" },
    series: rptSeries
  });

  var threshold = Number(report.trap.threshold) * 100;
  draw("chart-vci", {
    grid: { left: 60, right: 24, top: 24, bottom: 28 },
    tooltip: { trigger: "axis", valueFormatter: function (v) { return v === null || v === undefined ? "—" : v.toFixed(2) + "%"; } },
    xAxis: { type: "category", data: months },
    yAxis: { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value}%" } },
    series: [{
      name: label("value_chain_index"), type: "line", connectNulls: false,
      data: report.monthly.map(function (m) {
        return m.value_chain_index === null ? null : Number(m.value_chain_index) * 100;
      }),
      markLine: { symbol: "none", lineStyle: { type: "dashed", color: "#c0392b" },
        // Inside the plot: at the line's end it ran past the canvas and was cut off.
        label: { position: "insideEndTop",
          formatter: (zh ? "低端陷阱阈值 " : "trap threshold ") + threshold.toFixed(0) + "%" },
        data: [{ yAxis: threshold }] }
    }]
  });

  if (report.league.length) {
    // The chart shows the regions with work (the table below lists them all).
    var league = report.league.filter(function (r) { return r.tokens_total > 0; }).reverse();
    draw("chart-league", {
      grid: { left: 110, right: 24, top: 16, bottom: 28 },
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      xAxis: compactAxis,
      yAxis: { type: "category", data: league.map(function (r) { return zh ? r.name_zh : r.name_en; }) },
      series: [{ name: label("tokens_total"), type: "bar",
        data: league.map(function (r) {
          return { value: r.tokens_total, itemStyle: { color: r.trap_warning ? "#c0392b" : "#2c6fbb" } };
        }) }]
    });
  }

  var employment = report.employment.monthly;
  draw("chart-employment", {
    legend: { top: 0 },
    grid: { left: 60, right: 60, top: 36, bottom: 28 },
    xAxis: { type: "category", data: employment.map(function (m) { return m.month; }) },
    yAxis: [{ type: "value" }, { type: "value", name: "¥" }],
    series: [
      { name: label("active_annotators"), type: "bar",
        data: employment.map(function (m) { return m.active_annotators; }) },
      { name: label("median_earnings"), type: "line", yAxisIndex: 1,
        data: employment.map(function (m) { return num(m.median_earnings); }) }
    ]
  });

  var mapNode = document.getElementById("chart-map");
  if (mapNode) {
    fetch(mapNode.getAttribute("data-geo")).then(function (r) { return r.json(); }).then(function (geo) {
      echarts.registerMap("china-provinces", geo);
      var values = data.map.map(function (p) {
        return { name: p.code, value: p.tokens_total, label: zh ? p.name_zh : p.name_en };
      });
      var max = values.reduce(function (a, p) { return Math.max(a, p.value); }, 1);
      draw("chart-map", {
        tooltip: { trigger: "item", formatter: function (p) {
          return p.data ? p.data.label + ": " + p.data.value.toLocaleString(zh ? "zh-CN" : "en") : "—";
        } },
        visualMap: { min: 0, max: max, left: 8, bottom: 8, calculable: true,
          // 11900049119 read as 119亿 / 11.9B, like the axes.
          formatter: function (value) { return compact(Math.round(Number(value))); },
          inRange: { color: ["#e0ecf8", "#08519c"] } },
        series: [{ type: "map", map: "china-provinces", nameProperty: "id", roam: false,
          label: { show: false }, data: values }]
      });
    });
  }

  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  window.tokenworksCharts = charts;
})();
