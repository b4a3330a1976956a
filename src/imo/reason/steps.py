"""The worked-solution format shared by the step tasks, the policy, the verifiers and the search.

A solution is a list of step lines, then one answer line that starts with "=" (the answer line ends
the solution). Each line ends with a newline, so a policy writes one step per call:

    prompt   "347+285\\n"
    solution "7+5+0=12\\n4+8+1=13\\n3+2+1=6\\n=632\\n"

`StepTask` adds what search needs to the registry's `Task`: per-step exact labels (the process
oracle), a whole-solution check (the outcome oracle) and a length bound per difficulty (the budget of
one solution).

    steps, answer, complete = parse(text)
"""

from dataclasses import dataclass

from imo.tasks import Problem, Task

ANSWER = "="  # an answer line starts with this; a step line never does


@dataclass(frozen=True)
class Parsed:
    steps: list[str]  # the step lines, without their newlines
    answer: str | None  # the answer line's text after "=", None while there is none
    complete: bool  # an answer line ended by a newline was written


def parse(text: str) -> Parsed:
    """Split a (partial) solution into steps and answer; text after the answer line is ignored,
    and a last line without its newline is unfinished (not a step yet)."""
    lines = text.split("\n")
    done, tail = lines[:-1], lines[-1]
    steps: list[str] = []
    for line in done:
        if line.startswith(ANSWER):
            return Parsed(steps, line[len(ANSWER):], True)
        steps.append(line)
    if tail.startswith(ANSWER):
        return Parsed(steps, tail[len(ANSWER):], False)
    return Parsed(steps, None, False)


def join(steps: list[str], answer: str) -> str:
    return "".join(s + "\n" for s in steps) + f"{ANSWER}{answer}\n"


class StepTask(Task):
    """A task whose solutions are written as steps that can each be checked exactly."""

    def max_steps(self, difficulty: int) -> int:
        """The most step lines a solution of this difficulty may have (a policy is stopped after)."""
        raise NotImplementedError

    def max_line(self, difficulty: int) -> int:
        """The longest line (bytes, newline included) a solution of this difficulty needs."""
        raise NotImplementedError

    def max_tokens(self, difficulty: int) -> int:
        """Tokens of the longest solution a policy may write: steps plus the answer line."""
        return (self.max_steps(difficulty) + 1) * self.max_line(difficulty)

    def step_labels(self, problem: Problem, text: str) -> list[bool]:
        """One exact label per written line (steps, then the answer line when written): True while
        the solution so far is correct and can still end in a correct answer."""
        raise NotImplementedError

    def solution_ok(self, problem: Problem, text: str) -> bool:
        """The outcome oracle: does this worked solution end with a correct final answer?"""
        raise NotImplementedError

    def answer_of(self, text: str) -> str | None:
        """The final answer, the thing majority voting counts (None if there is none)."""
        return parse(text).answer

    def extract(self, output: str) -> str:
        return parse(output).answer or ""
