#pragma once

namespace cb {

/// The HTML report's inline stylesheet and drawing script (results/report_assets.cc). The
/// script reads the JSON in <script id="cb-data">, draws the SVG charts (one interactivity
/// frontier and one $/Mtok chart per model with every device overlaid, round ticks with units,
/// labelled points placed so that no two texts overlap, bars sized to their labels), then
/// records each drawn text's and point's box on the page in `data-bbox` (x,y,w,h in CSS pixels)
/// and the page height in <body data-height> for the layout checks of
/// tests/integration/report_test.py, and sets <body data-rendered="ok"> (or adds #cb-error).
extern const char* const kReportStyle;
extern const char* const kReportScript;

}  // namespace cb
