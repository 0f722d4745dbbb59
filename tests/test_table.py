"""The comparison table from hand-made records (golden Markdown) and the README block."""
# ruff: noqa: E501 - the golden table is as wide as the table it pins down

from sslbench.bench import table as tables
from sslbench.core.records import Cost, Metrics
from tests.test_records import make_record


def records():
    cfg = {"data": {"image_size": 16}, "pretrain": {"batch_size": 128}}
    return [
        make_record("a0", seed=0, config=cfg,
                    metrics=Metrics(linear_acc1=90.0, linear_acc5=99.0, knn_acc1=80.0),
                    cost=Cost(pretrain_seconds=360.0, images_per_second=100.0)),
        make_record("a1", seed=1, config=cfg,
                    metrics=Metrics(linear_acc1=92.0, linear_acc5=99.5, knn_acc1=84.0),
                    cost=Cost(pretrain_seconds=360.0, images_per_second=120.0)),
        make_record("r0", method="random", epochs=0, config=cfg,
                    metrics=Metrics(linear_acc1=70.0, linear_acc5=95.0, knn_acc1=60.0)),
        make_record("f0", status="failed", reason="nan"),
    ]


GOLDEN = """\
| Model   | Backbone   | Dataset   |   Epochs |        Acc@1 |        Acc@5 |          kNN |   n | Recipe       |   Pretrain h |   img/s |
|:--------|:-----------|:----------|---------:|-------------:|-------------:|-------------:|----:|:-------------|-------------:|--------:|
| SimCLR  | ResNet-18  | Digits    |        1 | 91.00 ± 1.41 | 99.25 ± 0.35 | 82.00 ± 2.83 |   2 | 16px, bs 128 |        0.100 |     110 |
| random  | ResNet-18  | Digits    |        0 |        70.00 |        95.00 |        60.00 |   1 | 16px, bs 128 |        0.000 |       – |
"""


def display(kind, name):
    return {"simclr": "SimCLR", "resnet18": "ResNet-18", "digits": "Digits"}.get(name, name)


def test_markdown_table_groups_seeds_and_skips_failed():
    summary = tables.summarise(tables.records_frame(records()), display)
    assert tables.render(summary) == GOLDEN


def test_csv_has_one_row_per_recipe():
    summary = tables.summarise(tables.records_frame(records()), display)
    lines = tables.render(summary, "csv").strip().splitlines()
    assert lines[0].startswith("Model,Backbone,Dataset,Epochs,Acc@1")
    assert len(lines) == 3


def test_readme_block_is_replaced_and_text_around_it_kept():
    text = f"# Title\n\nbefore\n{tables.START}\nold table\n{tables.END}\nafter\n"
    new = tables.replace_block(text, "| new |\n")
    assert new == f"# Title\n\nbefore\n{tables.START}\n| new |\n{tables.END}\nafter\n"
    assert tables.replace_block(new, "| new |\n") == new  # idempotent


def test_recipe_column_shows_backbone_options():
    cfg = {"backbone": {"name": "resnet18", "width": 0.5, "small_stem": False},
           "data": {"image_size": 16, "train_subset": 10000}, "pretrain": {"batch_size": 256}}
    summary = tables.recipe_summary(make_record(config=cfg))
    assert summary == "small stem false, width 0.5, 16px, 10k imgs, bs 256"


def test_empty_registry_says_so():
    assert "No completed runs" in tables.render(tables.summarise(tables.records_frame([])))


def test_sort_orders_rows_within_a_dataset_and_backbone():
    frame = tables.records_frame(records())
    by = {key: list(tables.summarise(frame, display, sort=key).Model)
          for key in ("acc1", "hours", "method")}
    assert by["acc1"] == ["SimCLR", "random"]  # 91 before 70: best first
    assert by["hours"] == ["random", "SimCLR"]  # 0 h before 0.1 h: cheapest first
    assert by["method"] == ["random", "SimCLR"]  # by registered name: random < simclr
    assert list(tables.summarise(frame, display, sort="acc1", reverse=True).Model) == [
        "random", "SimCLR"]
    other = make_record("z0", dataset="cifar10", config_hash="h9",
                        metrics=Metrics(linear_acc1=10.0))
    both = tables.summarise(tables.records_frame([*records(), other]), display)
    assert list(both.Dataset) == ["cifar10", "Digits", "Digits"]  # datasets stay grouped


def test_html_and_latex_formats():
    summary = tables.summarise(tables.records_frame(records()), display)
    html = tables.render(summary, "html")
    assert html.count("</tr>") == 3 and "<td>91.00 ± 1.41</td>" in html
    latex = tables.render(summary, "latex")
    assert r"\begin{tabular}{lllrrrrrlrr}" in latex
    assert r"91.00 $\pm$ 1.41" in latex and r"\toprule" in latex
    assert "–" not in latex  # missing img/s is "--" in LaTeX


def test_readme_freshness():
    table = tables.render(tables.summarise(tables.records_frame(records()), display))
    text = tables.replace_block("# Title\n", table)
    assert tables.is_fresh(text, table)
    assert not tables.is_fresh(text, table.replace("91.00", "91.01"))
    assert not tables.is_fresh("# Title without markers\n", table)
