"""Not collected by the suite: ``tests/test_conftest.py`` runs it as a pytest session of its
own. Its one test leaves a process connected to the test database when it ends."""
import subprocess
import sys

from django.db import connection


def test_leaves_a_connection_behind(transactional_db):
    settings = connection.settings_dict
    dsn = (f"host={settings['HOST']} port={settings['PORT'] or 5432} user={settings['USER']} dbname={settings['NAME']}"
           + (f" password={settings['PASSWORD']}" if settings["PASSWORD"] else ""))
    holds = "import sys, time, psycopg; held = psycopg.connect(sys.argv[1]); time.sleep(60)"
    subprocess.Popen([sys.executable, "-c", holds, dsn])
    with connection.cursor() as cursor:  # wait until it is connected
        for _ in range(100):
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                           [settings["NAME"]])
            if cursor.fetchone()[0]:
                return
            subprocess.run(["sleep", "0.1"])
    raise AssertionError("the straggler never connected")
