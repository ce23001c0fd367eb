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

}  // namespace

std::string RenderReport(const std::string& title, const std::string& results_json) {
  std::string html;
  html += "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  html += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  html += "<title>" + EscapeHtml(title) + "</title>\n<style>\n";
  html += Embedded("uPlot.min.css");
  html += "\n";
  html += Embedded("style.css");
  html += "\n</style>\n</head>\n<body class=\"report\">\n<header><h1>" + EscapeHtml(title) +
          "</h1></header>\n<main id=\"report\"></main>\n";
  html += "<script type=\"application/json\" id=\"bitsweep-results\">" +
          EscapeScript(results_json) + "</script>\n";
  for (const char* name : {"uPlot.iife.min.js", "render.js"}) {
    html += "<script>\n" + EscapeScript(Embedded(name)) + "\n</script>\n";
  }
  html +=
      "<script>\n"
      "BitsweepRender.renderResults(document.getElementById('report'),\n"
      "    JSON.parse(document.getElementById('bitsweep-results').textContent));\n"
      "</script>\n</body>\n</html>\n";
  return html;
}

}  // namespace bitsweep::dashboard
