"""Generate a realistic, messy orders CSV matching :class:`examples.orders_model.Order`.

::

    python examples/generate_orders.py out.csv --rows 200000 [--bad-fraction 0.02] [--seed 0]

About ``bad_fraction`` of the rows are bad on purpose, in varied ways (bad e-mail,
negative quantity, malformed date, unknown currency, non-numeric price such as
``"12,50"``, ragged rows with too few or too many fields). Each bad row is bad in
exactly one way, so ``sum(counts.values())`` is the number of rows a validating
pipeline must send to its dead-letter queue. Some valid rows carry notes with commas,
doubled quotes, quoted newlines and non-ASCII text: these must pass.

Rows are written with plain string formatting from precomputed pools of
already-CSV-encoded cells; one million rows take a few seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import time

FIELDS = [
    "order_id", "customer_id", "email", "order_date", "ship_date", "sku",
    "quantity", "unit_price", "currency", "country", "status", "notes",
]

#: The ways a row can be bad. ``ragged_*`` rows fail in the CSV parser (stage "parse"),
#: the others fail model validation (stage "validate").
BAD_KINDS = (
    "bad_email", "negative_quantity", "bad_date", "unknown_currency",
    "bad_price", "ragged_short", "ragged_long",
)
PARSE_KINDS = ("ragged_short", "ragged_long")

_CURRENCIES = ["USD", "USD", "USD", "EUR", "EUR", "GBP", "JPY", "CHF"]
_COUNTRIES = ["US", "US", "US", "DE", "FR", "GB", "JP", "CH", "NL", "ES", "IT", "CA", "SE", "PL", "BR", "IN"]
_STATUSES = ["new", "paid", "paid", "shipped", "shipped", "delivered", "delivered", "delivered", "cancelled", "returned"]
_NAMES = ["anna", "ben", "chloe", "dmitri", "emma", "farid", "grace", "hiro", "ines", "jonas",
          "kofi", "lena", "marco", "nadia", "oscar", "priya", "quinn", "rosa", "sven", "tariq",
          "ursula", "viktor", "wen", "ximena", "yusuf", "zoe", "jose.garcia", "m.mueller", "o_brien"]
_DOMAINS = ["example.com", "mail.example.org", "shop.test", "post.example.de", "corp.example.co.uk", "inbox.example.jp"]
# Notes, already CSV-encoded (quoted where needed). Most orders have none.
_NOTES = [""] * 12 + [
    "gift wrap",
    "leave at door",
    '"fragile, handle with care"',
    '"customer said ""ASAP"""',
    '"call before delivery, ring twice"',
    "Lieferung an Nachbarn \u2013 bitte klingeln",
    "配達前に電話してください",
    "café crème \u00d72 🎁",
    '"size: 42, colour: ""navy"""',
    "naïve façade résumé",
    "'single quotes' are fine",
    '"semi;colon, and comma"',
]
_MULTILINE_NOTES = [
    '"line one\nline two"',
    '"Deliver to:\nBuilding 4, Floor 2\nReception"',
    '"note with ""quotes""\nand a second line"',
]
_BAD_EMAILS = ["john.doe.example.com", "jane@@example.com", "no spaces@example.com", "bob@localhost", "@example.com", "x@y.z"]
_BAD_DATES = ["2024-02-30", "2024-13-01", "31/12/2024", "yesterday", "2024-1-5x", "2023-00-10"]
_BAD_CURRENCIES = ["USDX", "usd", "BTC", "XXX", "€", "DOLLAR"]
_BAD_PRICES = ['"12,50"', "N/A", "12.5.0", "$9.99", '"1,299.00"', "abc"]


def _date_pool() -> list[str]:
    start = dt.date(2023, 1, 1)
    return [(start + dt.timedelta(days=d)).isoformat() for d in range(3 * 365)]


def generate_orders_csv(path: str | os.PathLike[str], rows: int, *, bad_fraction: float = 0.02, seed: int = 0) -> dict[str, int]:
    """Write ``rows`` orders (plus a header) to ``path``; return bad-row counts by kind.

    Every key of :data:`BAD_KINDS` is present (possibly 0). A validating pipeline must
    accept ``rows - sum(counts.values())`` rows and reject the others: the ``ragged_*``
    ones at the parse stage, the rest at validation.
    """
    if rows < 0:
        raise ValueError("rows must be >= 0")
    if not 0 <= bad_fraction <= 1:
        raise ValueError("bad_fraction must be between 0 and 1")
    rng = random.Random(seed)
    dates = _date_pool()
    n_dates = len(dates)
    prices = [f"{c // 100}.{c % 100:02d}" for c in rng.choices(range(99, 250_00), k=4096)]
    skus = [f"{a}{b}{c}-{n:04d}" for a, b, c, n in
            zip(rng.choices("ABCDEFGHJKLMNPRSTUVWXYZ", k=2000), rng.choices("ABCDEFGHKMNPRSTWXYZ", k=2000),
                rng.choices("ABCDEFGHKMNPRSTWXYZ", k=2000), rng.choices(range(10_000), k=2000))]
    emails = [f"{rng.choice(_NAMES)}{rng.randrange(1, 9999)}@{rng.choice(_DOMAINS)}" for _ in range(5000)]
    quantities = [str(q) for q in [1] * 12 + [2] * 6 + [3] * 3 + list(range(4, 13)) + [20, 50, 100]]

    n_bad = round(rows * bad_fraction)
    bad_rows = dict(zip(rng.sample(range(rows), n_bad), rng.choices(BAD_KINDS, k=n_bad)))
    counts = dict.fromkeys(BAD_KINDS, 0)

    batch = 50_000
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(",".join(FIELDS) + "\n")
        for start in range(0, rows, batch):
            k = min(batch, rows - start)
            customers = rng.choices(range(1, 250_000), k=k)
            email_ix = rng.choices(range(len(emails)), k=k)
            date_ix = rng.choices(range(n_dates - 30), k=k)
            ship_off = rng.choices((None, None, 0, 1, 2, 3, 5, 8, 13), k=k)
            sku_ix = rng.choices(skus, k=k)
            qty = rng.choices(quantities, k=k)
            price = rng.choices(prices, k=k)
            cur = rng.choices(_CURRENCIES, k=k)
            country = rng.choices(_COUNTRIES, k=k)
            status = rng.choices(_STATUSES, k=k)
            notes = rng.choices(_NOTES, k=k)
            multiline = set(rng.sample(range(k), k // 200))  # 0.5%: valid rows with quoted newlines
            out = []
            for j in range(k):
                i = start + j
                d = date_ix[j]
                off = ship_off[j]
                order_date = dates[d]
                ship_date = "" if off is None else dates[d + off]
                email = emails[email_ix[j]]
                quantity = qty[j]
                unit_price = price[j]
                currency = cur[j]
                note = _MULTILINE_NOTES[j % 3] if j in multiline else notes[j]
                kind = bad_rows.get(i)
                if kind is not None:
                    counts[kind] += 1
                    v = i % 6
                    if kind == "bad_email":
                        email = _BAD_EMAILS[v]
                    elif kind == "negative_quantity":
                        quantity = ("-1", "-5", "-12", "0", "-3", "-100")[v]
                    elif kind == "bad_date":
                        order_date = _BAD_DATES[v]
                    elif kind == "unknown_currency":
                        currency = _BAD_CURRENCIES[v]
                    elif kind == "bad_price":
                        unit_price = _BAD_PRICES[v]
                    elif kind == "ragged_short":
                        out.append(f"{i + 1},{customers[j]},{email},{order_date},{ship_date},{sku_ix[j]},{quantity},{unit_price}\n")
                        continue
                    else:  # ragged_long
                        out.append(f"{i + 1},{customers[j]},{email},{order_date},{ship_date},{sku_ix[j]},{quantity},{unit_price},"
                                   f"{currency},{country[j]},{status[j]},{note},EXTRA,{v}\n")
                        continue
                out.append(f"{i + 1},{customers[j]},{email},{order_date},{ship_date},{sku_ix[j]},{quantity},{unit_price},"
                           f"{currency},{country[j]},{status[j]},{note}\n")
            f.write("".join(out))
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="CSV file to write")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--bad-fraction", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    started = time.perf_counter()
    counts = generate_orders_csv(args.out, args.rows, bad_fraction=args.bad_fraction, seed=args.seed)
    took = time.perf_counter() - started
    size = os.path.getsize(args.out)
    print(f"wrote {args.rows:,} rows ({size / 1e6:.1f} MB) to {args.out} in {took:.2f} s")
    print(f"intentionally bad: {sum(counts.values()):,} " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
