"""A suite's report: results collected once, derived numbers, one page model, rendered three ways.

    apro report --suite demo          # results.csv, summary.md, summary.html (and metafiles/) of reports/demo/
    apro html-report --suite demo     # reports/demo/index.html with the figures

* :mod:`~apro.report.collect` reads what the runs left (metrics, done.json, the steps' own records);
* :mod:`~apro.report.derive` computes per-experiment statistics, the APro gains and the verdicts;
* :mod:`~apro.report.pages` builds the pages as :mod:`~apro.report.render` models (Markdown and HTML);
* :mod:`~apro.report.metafiles` writes the model-zoo metafiles (mmdetection's convention);
* :mod:`~apro.report.write` writes the files, atomically.

Works on whatever results exist (a missing part is said to be missing, never an error); needs pandas (and
matplotlib for the ablation plots), not torch.
"""
from apro.report.collect import ReportError, collect  # noqa: F401
from apro.report.write import Written, write_html_report, write_report, write_summary  # noqa: F401

__all__ = ["ReportError", "Written", "collect", "write_html_report", "write_report", "write_summary"]
