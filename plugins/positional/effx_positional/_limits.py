from effx import SequenceTooLongError


def check(name: str, n: int, limit: int) -> None:
    if n > limit:
        raise SequenceTooLongError(
            f"positional '{name}' covers {limit} positions but the input has {n}; raise model.max_seq_len"
        )
