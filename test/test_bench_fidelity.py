"""The fidelity report only ever rewrites its own section of docs/eval.md."""

from tinyvlm_ros.bench.fidelity import BEGIN, END, write_section


def test_section_is_created_then_replaced_between_the_markers(tmp_path):
    doc = tmp_path / "eval.md"
    write_section(doc, f"{BEGIN}\nfirst run\n{END}\n")
    assert doc.read_text().count(BEGIN) == 1 and "first run" in doc.read_text()
    # another helper's text around the section survives every rewrite
    section = doc.read_text().split("\n", 2)[2]
    doc.write_text("# Evaluation\n\ncoverage table\n\n" + section + "\nclosing note\n")
    write_section(doc, f"{BEGIN}\nsecond run\n{END}\n")
    text = doc.read_text()
    assert "coverage table" in text and "closing note" in text
    assert "second run" in text and "first run" not in text
    assert text.count(BEGIN) == 1 and text.count(END) == 1


def test_a_document_without_markers_gets_the_section_appended(tmp_path):
    doc = tmp_path / "eval.md"
    doc.write_text("# Evaluation\n\nwritten by someone else\n")
    write_section(doc, f"{BEGIN}\nfigures\n{END}\n")
    text = doc.read_text()
    assert text.startswith("# Evaluation\n\nwritten by someone else\n") and text.rstrip().endswith(END)
