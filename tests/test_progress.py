import io

from ace_core.progress import ConsoleProgress, report


def test_console_progress_redraws_only_visible_changes_and_ends_the_line():
    stream = io.StringIO()
    hook = ConsoleProgress("loading", stream=stream)
    for done in range(1, 554):
        report(hook, done, 553)
    out = stream.getvalue()
    redraws = out.count("\r")
    assert 1 < redraws <= ConsoleProgress.WIDTH + 1  # one per bar step, not one per tensor
    last = out.rsplit("\r", 1)[1]
    assert last.startswith("loading [" + "#" * ConsoleProgress.WIDTH + "] 553/553") and last.endswith("s\n")


def test_report_without_hook_is_silent():
    report(None, 1, 2)  # no hook: nothing to call, nothing raised
    calls = []
    report(lambda d, t: calls.append((d, t)), 1, 2)
    assert calls == [(1, 2)]
