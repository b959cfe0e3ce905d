"""MkDocs hooks: publish the generated report (figures/REPORT.md and its PNGs) inside the site.

The report lives beside the code that writes it, so pages link it as ``../figures/REPORT.md``
(a link that also works when the Markdown is read on its own); in the site it becomes
``report.md``, with the figures under ``out/`` as the report expects.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

REPORT_LINK = "](../figures/REPORT.md"


def _root(config) -> Path:
    return Path(config["config_file_path"]).resolve().parent


def on_files(files: Files, config) -> Files:
    root = _root(config)
    files.append(File.generated(config, "report.md",
                                abs_src_path=str(root / "figures" / "REPORT.md")))
    for png in sorted((root / "figures" / "out").glob("*.png")):
        files.append(File.generated(config, f"out/{png.name}", abs_src_path=str(png)))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    depth = page.file.src_uri.count("/")
    return markdown.replace(REPORT_LINK, "](" + "../" * depth + "report.md")
