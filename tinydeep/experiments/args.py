"""Validated command-line argument types for the demos: a bad value is refused by
argparse with its usual one-line "argument --epochs: ..." message, before anything is
created or trained (an `--epochs -1` that ran untrained models, or an `--epochs 0`
that quietly fell back to the default, is a silent wrong answer)."""
import argparse


def demo_parser(doc, quick="a small run (< 60 s), for a smoke test"):
    """A demo's argument parser, its first line of `doc` the description, with the two
    arguments every demo takes: --quick and --out FOLDER (its PNGs and JSON record)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=quick)
    ap.add_argument("--out", type=out_dir, default="results", help="folder for the PNGs and "
                    "JSON record (default results/)")
    return ap


def positive_int(text):
    """argparse type: an integer >= 1 ('0', '-1', '2.5', 'ten' are refused)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def out_dir(text):
    """argparse type: a folder name for results; an empty string is refused (it would
    silently mean the current folder, or the default one)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a folder, got an empty string")
    return text


def check_dataset(name, known, unfit=None):
    """name, if it is in `known`; else a ValueError, with the reason where `unfit` (a dict
    name -> why) has one."""
    if unfit and name in unfit:
        raise ValueError(f"{name} does not fit this experiment: {unfit[name]}")
    if name not in known:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(known)}")
    return name


def dataset_name(known, unfit):
    """argparse type for a demo's --dataset: check_dataset's refusal as argparse's message."""
    def parse(text):
        try:
            return check_dataset(text, known, unfit)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse
