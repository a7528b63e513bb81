"""The lesson panel: the lesson's notes (Markdown) and, after a run, its checks."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Markdown, Static


class LessonPanel(VerticalScroll):
    def compose(self) -> ComposeResult:
        yield Static(Text("No lesson open: press l to pick one.", "dim"), id="lesson-head")
        yield Static("", id="lesson-checks")
        yield Markdown("", id="lesson-notes")

    def show(self, lesson, new_nodes: list[str]) -> None:
        if lesson is None:
            self.query_one("#lesson-head", Static).update(Text("No lesson open: press l to pick one.", "dim"))
            self.query_one("#lesson-notes", Markdown).update("")
            self.checks(None)
            return
        head = Text(f"Lesson {lesson.number}: {lesson.title}\n", "bold")
        head.append(lesson.summary + "\n", "italic")
        if new_nodes:
            head.append("New in this step: ", "bold green")
            head.append(", ".join(f"#{n}" for n in new_nodes) + " (✚ in the graph)\n", "green")
        head.append("i: edit the selected node · m: node / notes\n", "dim")  # this tab hides the inspector
        head.append("n / p: next / previous lesson", "dim")
        self.query_one("#lesson-head", Static).update(head)
        self.query_one("#lesson-notes", Markdown).update(lesson.notes())
        self.checks(None)

    def checks(self, results) -> None:
        """results: list of CheckResult, an exception from run_checks, or None (not run yet)."""
        text = Text()
        if results is None:
            text.append("Checks: run the lesson (r, or ctrl+r from a field) to see them.", "dim")
        elif isinstance(results, Exception):
            text.append(f"Checks could not run: {results}", "bold red")
        else:
            passed = sum(1 for r in results if r.passed)
            text.append(f"Checks: {passed}/{len(results)} passed\n", "bold green" if passed == len(results) else "bold red")
            for r in results:
                text.append("  ✓ " if r.passed else "  ✗ ", "green" if r.passed else "red")
                text.append(f"{r.name}: {r.detail}\n")
        self.query_one("#lesson-checks", Static).update(text)
