"""Whole-file errors of extraction."""

from __future__ import annotations


class UnreadableFileError(Exception):
    """A delivered file that cannot be read at all (nothing of it is loaded).

    ``file_name`` is the file as the coordinator named it; ``problem`` is one or two
    sentences a coordinator understands (what is wrong and what to do). The problem is
    published (delivery records, reports, run logs), so it passes the privacy redaction:
    it never quotes a delivered value (STUDY.md "Privacy").
    """

    def __init__(self, file_name: str, problem: str):
        from ibd_pipeline.privacy import redact

        self.file_name = file_name
        self.problem = redact(problem)
        super().__init__(f"{file_name}: {problem}")

    def __reduce__(self):  # picklable across processes (multiprocess executor)
        return (UnreadableFileError, (self.file_name, self.problem))
