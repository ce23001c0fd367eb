// The results dashboard's front end, embedded in the binary (dashboard/CMakeLists.txt): the page
// (src/index.html, app.js), the rendering shared with the HTML reports (src/render.js: the pivoted
// results table with deltas to the FP baseline, the uPlot metric-vs-bits plots and the SVG charts
// of the paper report), the paper report's layout (src/report.js), the style, and the chart
// library uPlot from npm. Nothing here reads files or the network, so the page and the reports
// work offline. Thread-safe: immutable data.
#pragma once

#include <string>
#include <string_view>

namespace bitsweep::dashboard {

struct Asset {
  std::string_view name;          // "app.js": the URL path under /assets/
  std::string_view content_type;  // "text/javascript; charset=utf-8", ...
  std::string_view data;
};

// nullptr for an unknown name.
const Asset* FindAsset(std::string_view name);

// One self-contained HTML file (inline CSS, JS including uPlot, and the data) showing the same
// tables and plots as the dashboard's results view. `results_json` is ResultsTableToJson's
// output; `title` is escaped for HTML.
std::string RenderReport(const std::string& title, const std::string& results_json);

// `bitsweep report`: one self-contained HTML file (inline CSS and JS, the data, SVG charts; no
// external asset) of the study's report, drawn by src/report.js from `report_json`
// (cli/report.h ReportJson); `title` is escaped for HTML.
std::string RenderPaperReport(const std::string& title, const std::string& report_json);

}  // namespace bitsweep::dashboard
