"""The house's layout: rooms of a readable size, imports one way, one options object.

The library (`boundary_aware`, and `data_prep` above it) keeps every file under
400 lines and every function under 80; nothing in `boundary_aware` imports
`data_prep` or `experiments` (the floors: library, then data preparation, then
the experiments); every inference entry point takes the one options object.
"""

import ast
import inspect

import pytest

from tests.conftest import ROOT

LIBRARY = ("boundary_aware", "data_prep")
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 80


def _modules(*packages):
    return [p for package in packages for p in sorted((ROOT / package).rglob("*.py"))]


def test_no_library_file_or_function_is_too_long():
    long_files, long_functions = [], []
    for path in _modules(*LIBRARY):
        text = path.read_text()
        if len(text.splitlines()) > MAX_FILE_LINES:
            long_files.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: "
                                          f"{length} lines")
    assert long_files == [] and long_functions == []


@pytest.mark.parametrize("lower, upper", [("boundary_aware", "data_prep"),
                                          ("boundary_aware", "experiments"),
                                          ("data_prep", "experiments")])
def test_imports_run_one_way(lower, upper):
    """No module of `lower` imports one of `upper`, the floor above it."""
    found = []
    for path in _modules(lower):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names
                      if n == upper or n.startswith(upper + ".")]
    assert found == []


def test_every_inference_entry_point_takes_the_options_object():
    from boundary_aware.evaluate import score_models
    from boundary_aware.inference.options import InferenceOptions
    from boundary_aware.inference.sources import load_predictor, load_predictors
    from boundary_aware.predict import predict_path
    from boundary_aware.predict_cases import predict_file, predict_folder
    from boundary_aware.volume_scores import (choose_postprocessing, score_volumes,
                                              whole_volume_rules)
    for function in (predict_path, predict_file, predict_folder, load_predictor,
                     load_predictors, score_models, choose_postprocessing, score_volumes,
                     whole_volume_rules):
        parameters = inspect.signature(function).parameters
        assert "options" in parameters, function.__name__
        annotation = parameters["options"].annotation
        assert annotation in (InferenceOptions, "InferenceOptions"), function.__name__
        for setting in ("threshold", "tta", "flips", "precision", "crop", "batch_size"):
            assert setting not in parameters, (function.__name__, setting)
