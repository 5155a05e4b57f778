"""psycopg 3 against Privet's PostgreSQL front, driven by the e2e test
`pg_clients::psycopg_binds_parameters_and_survives_refusals`.

Environment: PRIVET_PG_HOST, PRIVET_PG_PORT, PRIVET_PG_KEY (marketing-service's
API key), PRIVET_OPTED_IN (an opted-in customer id), PRIVET_OPTED_OUT (an
opted-out one). Prints "ok" and exits 0 when every check holds.
"""
import os
import sys

import psycopg
from psycopg import errors


def main() -> int:
    conn = psycopg.connect(
        host=os.environ["PRIVET_PG_HOST"],
        port=int(os.environ["PRIVET_PG_PORT"]),
        dbname="privet",
        user="marketing-service",
        password=os.environ["PRIVET_PG_KEY"],
        options="-c privet.purpose=marketing",
        connect_timeout=10,
    )
    opted_in = int(os.environ["PRIVET_OPTED_IN"])
    opted_out = int(os.environ["PRIVET_OPTED_OUT"])
    with conn:
        cur = conn.cursor()
        # psycopg binds server-side: $1 with a typed parameter.
        cur.execute("SELECT id, email FROM customers WHERE id = %s", (opted_in,))
        rows = cur.fetchall()
        assert len(rows) == 1 and rows[0][0] == opted_in, rows
        assert "***@" in rows[0][1], rows
        # The row filter holds whatever the parameter asks for.
        cur.execute("SELECT id FROM customers WHERE id = %s", (opted_out,))
        assert cur.fetchall() == [], "an opted-out customer was returned"
        cur.execute("SELECT id FROM customers ORDER BY id LIMIT %s", (3,))
        assert len(cur.fetchall()) == 3
        # A parameter is a value, never SQL.
        injection = "x' OR '1'='1"
        cur.execute("SELECT CAST(%s AS TEXT) AS v", (injection,))
        assert cur.fetchone()[0] == injection
        # A refusal is an exception with its SQLSTATE; the session survives.
        try:
            cur.execute("SELECT phone FROM customers")
            raise AssertionError("phone is denied to marketing, yet the query succeeded")
        except errors.InsufficientPrivilege as e:
            assert "phone" in str(e), str(e)
        conn.rollback()
        cur.execute("SELECT count(*) FROM customers")
        (count,) = cur.fetchone()
        assert isinstance(count, int) and count > 0, count
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
