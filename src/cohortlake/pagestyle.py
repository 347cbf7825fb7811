"""The one stylesheet of the HTML pages the package writes: the study report
(:mod:`cohortlake.report.html`) and the quality page (:mod:`cohortlake.quality.page`).

Both pages inline it (they are self-contained: nothing is fetched), so it lives here, below
both, rather than in one of them; a page adds its own few rules after it. It is a Python
string, not a package-data file, so every install (editable, wheel, a zip shipped with
spark-submit) has it.
"""

STYLESHEET = """\
:root {
  --ink: #1f2933; --muted: #52606d; --line: #cbd2d9; --soft: #f5f7fa; --accent: #1f4e79;
  --pass: #1b7a3d; --pass-bg: #e3f4e8; --fail: #a61b1b; --fail-bg: #fbe4e4;
}
* { box-sizing: border-box; }
html { font-size: 16px; }
body {
  margin: 0; color: var(--ink); background: #fff;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  line-height: 1.5;
}
main { max-width: 1120px; margin: 0 auto; padding: 2rem 2.5rem 4rem; }
header.report { border-bottom: 3px solid var(--accent); padding-bottom: 1rem; margin-bottom: 1.5rem; }
header.report h1 { font-size: 1.9rem; line-height: 1.25; margin: 0 0 .4rem; }
header.report .meta { color: var(--muted); margin: 0; }
header.report .meta span + span::before { content: "·"; margin: 0 .6em; }
nav.toc { background: var(--soft); border-radius: 6px; padding: .75rem 1.25rem; margin-bottom: 2rem; }
nav.toc ol { margin: 0; padding-left: 1.25rem; columns: 2; }
nav.toc a { color: var(--accent); text-decoration: none; }
section { margin: 2.5rem 0; }
h2 { font-size: 1.4rem; border-bottom: 1px solid var(--line); padding-bottom: .3rem; margin: 0 0 1rem; }
h3 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
p, li { max-width: 75ch; }
.note { color: var(--muted); font-size: .9rem; }
.missing { background: var(--soft); border-left: 4px solid var(--line); padding: .6rem 1rem; color: var(--muted); }
.warning { background: var(--fail-bg); border-left: 4px solid var(--fail); padding: .6rem 1rem; }

table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: .5rem 0 1rem; font-size: .93rem; }
caption { text-align: left; font-weight: 600; padding-bottom: .4rem; }
th, td { padding: .35rem .7rem; border-bottom: 1px solid var(--line); vertical-align: top; }
thead th { border-bottom: 2px solid var(--ink); text-align: left; white-space: nowrap; }
thead tr.group th { border-bottom: 1px solid var(--muted); text-align: center; }
tbody tr:nth-child(even) { background: #fafbfc; }
td.num, th.num { text-align: right; white-space: nowrap; }
td.indent { padding-left: 1.8rem; }
tr.heading td { font-weight: 600; background: #fff; }
td.phase-start, th.phase-start { border-left: 2px solid var(--line); }
.over { color: var(--fail); font-weight: 600; }
table.wide { width: 100%; }

.badge { display: inline-block; font-weight: 700; padding: .15rem .7rem; border-radius: 999px; letter-spacing: .03em; }
.badge.pass { color: var(--pass); background: var(--pass-bg); border: 1px solid var(--pass); }
.badge.fail { color: var(--fail); background: var(--fail-bg); border: 1px solid var(--fail); }
.verdict { font-size: 1.05rem; margin: .5rem 0 1rem; }

figure { margin: 1rem 0; }
figure img { max-width: min(100%, 880px); height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: .9rem; margin-top: .3rem; }
.two-col { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 2rem; align-items: start; }
table.comparisons td:first-child { min-width: 15rem; }

/* attrition flow: main boxes down the left, exclusions branching to the right */
.flow { display: grid; grid-template-columns: minmax(280px, 440px) minmax(200px, 300px); max-width: 760px; }
.flow .box { border: 2px solid var(--accent); border-radius: 6px; padding: .55rem .9rem; background: #fff; }
.flow .box .step { display: block; color: var(--muted); font-size: .8rem; text-transform: uppercase; letter-spacing: .05em; }
.flow .box .count { font-weight: 700; font-size: 1.05rem; }
.flow .side { align-self: center; border: 1px dashed var(--muted); border-radius: 6px; padding: .4rem .8rem;
              background: var(--soft); font-size: .9rem; }
.flow .link { position: relative; min-height: 3.4rem; }
.flow .link::before { content: ""; position: absolute; left: 50%; top: 0; bottom: 9px; border-left: 2px solid var(--muted); }
.flow .link::after { content: ""; position: absolute; left: calc(50% - 7px); bottom: 0;
                     border-left: 7px solid transparent; border-right: 7px solid transparent; border-top: 9px solid var(--muted); }
.flow .link.branch .arm { position: absolute; left: 50%; right: 0; top: 50%; border-top: 2px solid var(--muted); }
.flow .link.branch .arm::after { content: ""; position: absolute; right: 0; top: -8px;
                                 border-top: 7px solid transparent; border-bottom: 7px solid transparent; border-left: 9px solid var(--muted); }
.flow .spacer { min-height: 0; }
.arms { display: flex; gap: 1.5rem; margin-top: 0; max-width: 440px; }
.arms .box { flex: 1; border: 2px solid var(--accent); border-radius: 6px; padding: .55rem .9rem; }
.arms .box .count { font-weight: 700; }
.split { position: relative; height: 2.2rem; max-width: 440px; }
.split::before { content: ""; position: absolute; left: 50%; top: 0; height: 1.1rem; border-left: 2px solid var(--muted); }
.split::after { content: ""; position: absolute; left: 25%; right: 25%; top: 1.1rem; height: 1.1rem;
                border: 2px solid var(--muted); border-bottom: 0; }

.notice { background: var(--fail-bg); border: 2px solid var(--fail); color: var(--fail); padding: .6rem 1rem;
          border-radius: 6px; margin-bottom: 1rem; }
.release-note { color: var(--muted); font-size: .85rem; margin-bottom: .5rem; }
footer.small-cells { border-top: 1px solid var(--line); padding-top: 1rem; }
@media print {
  main { max-width: none; padding: 0; }
  nav.toc { display: none; }
  section { break-inside: avoid-page; }
}
@media (max-width: 900px) {
  main { padding: 1rem; }
  .two-col { grid-template-columns: 1fr; }
  nav.toc ol { columns: 1; }
}
"""
"""The shared CSS, ending in a newline."""
