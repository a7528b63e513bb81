"""Command palette (ctrl+p): every action of the main screen, by its description, plus
"open lesson N" for each lesson. Built from the BINDINGS, like the help screen."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


class NodegraphCommands(Provider):
    def _commands(self) -> list[tuple[str, str, object]]:
        from .screens.main import MainScreen

        screen = getattr(self.app, "main_screen", None)
        if not isinstance(screen, MainScreen):
            return []
        commands = []
        for binding in MainScreen.BINDINGS:
            if binding.description:
                key = binding.key.split(",")[0]
                commands.append((binding.description, f"key {key}", partial(screen.run_action, binding.action)))
        try:
            from nodegraph.lessons import list_lessons

            for lesson in list_lessons():
                commands.append(
                    (f"Open lesson {lesson.number}: {lesson.title}", lesson.summary, partial(screen.open_lesson, lesson.number))
                )
        except Exception:
            pass
        return commands

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, text=name, help=help_text)
