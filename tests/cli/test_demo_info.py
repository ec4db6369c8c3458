"""``napari-focus-stack demo`` and ``info``."""
from napari_focus_stack.cli import main


def test_demo(tmp_path, capsys):
    assert main(["demo", str(tmp_path / "demo"), "-q"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "demo" / "fused.png").is_file() and (tmp_path / "demo" / "depth.tif").is_file()
    psnr = float(out.split("PSNR ")[1].split(" dB")[0])
    assert psnr > 30


def test_info_runs(capsys):
    assert main(["info", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "backend for device='cpu': cpu" in out and "gpu:" in out
