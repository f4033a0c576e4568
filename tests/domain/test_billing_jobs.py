"""The daily jobs: the CLI with a time passed in, the schedule in ``circnode run``, the admin view."""
import datetime


from tests.helpers.billing import lend

UTC = datetime.timezone.utc


def test_jobs_run_at_a_local_time_declares_lost_and_reports_each_step(lender, runner):
    from node.store.models import JobRun, Loan
    loan = lend(lender, "N0001", "SOUTH", "south-7")  # due Monday 16 March 2026
    early = runner(lender, "jobs", "run", "--at", "2026-04-14T23:30")  # local: 29 days overdue
    assert early.exit_code == 0 and "lost: declared lost 0, fees 0" in early.output
    result = runner(lender, "jobs", "run", "--at", "2026-04-15T00:30")  # local midnight passed: 30 days
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split(":")[0] for line in lines] == ["overdue", "lost", "notices", "purge"]
    assert "lost: declared lost 1, fees 3" in lines
    assert Loan.get_by_id(loan.id).lost_at == datetime.datetime(2026, 4, 14, 22, 30, tzinfo=UTC)
    run = JobRun.get_by_id("lost")
    assert run.as_of == datetime.datetime(2026, 4, 14, 22, 30, tzinfo=UTC) and run.error == ""


def test_jobs_run_refuses_a_bad_time_with_one_line(lender, runner):
    result = runner(lender, "jobs", "run", "--at", "next tuesday")
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "--at" in result.output
    only = runner(lender, "jobs", "run", "--only", "purge", "--at", "2026-04-15T00:30+02:00")
    assert only.exit_code == 0 and only.output.startswith("purge: ")


def test_a_failing_step_is_recorded_and_the_others_still_run(lender, runner):
    from node.domain import jobs
    from node.store.db import database
    from node.store.models import JobRun
    database.execute_sql("DROP TABLE notice")  # a damaged database: the notices step cannot work
    results = jobs.run_daily(lender, datetime.datetime(2026, 4, 15, tzinfo=UTC))
    assert results["notices"] == {"error": "OperationalError: no such table: notice"}
    assert "error" not in results["lost"] and "error" not in results["purge"]
    assert JobRun.get_by_id("notices").error == "OperationalError: no such table: notice"
    assert runner(lender, "jobs", "run", "--only", "notices").exit_code == 1


def test_circnode_run_schedules_the_daily_jobs_and_the_notice_retry(lender):
    from node.cli.runner import start_scheduler
    scheduler = start_scheduler(lender)
    try:
        daily = scheduler.get_job("daily_jobs")
        assert daily is not None and "hour='2', minute='30'" in str(daily.trigger)
        assert str(daily.trigger.timezone) == "Europe/Zurich"
        assert scheduler.get_job("notice_retry").trigger.interval == datetime.timedelta(minutes=15)
    finally:
        scheduler.shutdown(wait=False)


def test_bursar_page_shows_the_last_runs(lender):
    from node.web.app import create_app
    from node.domain.accounts import add_staff
    from node.domain.jobs import run_daily
    run_daily(lender, datetime.datetime(2026, 4, 15, tzinfo=UTC))
    app = create_app(lender, {"TESTING": True})
    add_staff("boss", "admin", "battery staple", datetime.datetime.now(UTC))
    client = app.test_client()
    token = client.get("/login").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/login", data={"name": "boss", "password": "battery staple", "csrf_token": token})
    page = client.get("/billing/bursar").get_data(as_text=True)
    assert "2026-04-15 02:00" in page
    jobs_table = page.split('<table id="jobs">')[1].split("</table>")[0]
    assert "declared lost: 0 · fees: 0" in jobs_table  # in words, not the stored JSON
    assert "{" not in jobs_table and "&#34;" not in jobs_table and "_" not in jobs_table


def test_notice_files_written_by_a_run_in_the_future_survive_that_runs_purge(lender, runner):
    import os
    lend(lender, "N0002", "SOUTH", "south-8")  # no mail server: notices become .eml files
    result = runner(lender, "jobs", "run", "--at", "2030-01-15T10:00")
    assert result.exit_code == 0, result.output
    folder = os.path.join(lender.data_dir, "mail")
    written = [name for name in os.listdir(folder) if name.endswith(".eml")]
    assert written, "the lost notice was written"
    assert "mail files removed 0" in result.output
