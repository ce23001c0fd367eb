#include <initializer_list>

#include "dashboard/assets.h"

namespace bitsweep::dashboard {
namespace {

std::string EscapeHtml(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Inside <script>, the only sequence that ends the element early is "</" + "script"; JSON and JS
// read "<\/" exactly as "</" in strings, which is the only place it can occur in them.
std::string EscapeScript(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '<' && i + 1 < text.size() && text[i + 1] == '/') {
      out += "<\\";
      continue;
    }
    out += text[i];
  }
  return out;
}

std::string Embedded(std::string_view name) {
  const Asset* a = FindAsset(name);
  return a == nullptr ? std::string() : std::string(a->data);
}

// One page: inline styles, the data as a JSON script element, inline scripts, and `init` run last.
std::string Page(const std::string& title, std::initializer_list<const char*> styles,
                 const std::string& data_id, const std::string& data_json,
                 std::initializer_list<const char*> scripts, const char* init) {
  std::string html;
  html += "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  html += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  html += "<title>" + EscapeHtml(title) + "</title>\n<style>\n";
  for (const char* name : styles) html += Embedded(name) + "\n";
  html += "</style>\n</head>\n<body class=\"report\">\n<header><h1>" + EscapeHtml(title) +
          "</h1></header>\n<main id=\"report\"></main>\n";
  html += "<script type=\"application/json\" id=\"" + data_id + "\">" + EscapeScript(data_json) +
          "</script>\n";
  for (const char* name : scripts) {
    html += "<script>\n" + EscapeScript(Embedded(name)) + "\n</script>\n";
  }
  html += "<script>\n" + std::string(init) + "</script>\n</body>\n</html>\n";
  return html;
}

}  // namespace

std::string RenderReport(const std::string& title, const std::string& results_json) {
  return Page(title, {"uPlot.min.css", "style.css"}, "bitsweep-results", results_json,
              {"uPlot.iife.min.js", "render.js", "charts.js"},
              "BitsweepRender.renderResults(document.getElementById('report'),\n"
              "    JSON.parse(document.getElementById('bitsweep-results').textContent));\n");
}

// The paper report draws only SVG (charts.js), so it needs no uPlot.
std::string RenderPaperReport(const std::string& title, const std::string& report_json) {
  return Page(title, {"style.css"}, "bitsweep-report", report_json,
              {"render.js", "charts.js", "report.js"},
              "BitsweepReport.render(document.getElementById('report'),\n"
              "    JSON.parse(document.getElementById('bitsweep-report').textContent));\n");
}

}  // namespace bitsweep::dashboard
