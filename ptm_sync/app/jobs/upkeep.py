"""The jobs that run existing use cases at their cadence: ``open`` (booking opens),
``expire`` (holds run out), ``digest`` (the staff digest, once a day) and ``purge``
(personal data past ``[retention] meetings_days``)."""

from __future__ import annotations

from ptm_sync.app import retention
from ptm_sync.app.jobs.work import Done, JobContext, plural
from ptm_sync.app.read import digest as staff_digest
from ptm_sync.app.services import expire_holds, open_booking


def open_periods(ctx: JobContext) -> Done:
    """Send the invitations of each period whose ``booking_opens`` has come, once."""
    opened = open_booking(ctx.db, ctx.config, now=ctx.now, video=ctx.video)
    if not opened:
        return Done("no period opens now")
    return Done(f"booking opened for {', '.join(opened)}", queued=True)


def expire(ctx: JobContext) -> Done:
    """Proposals nobody answered by their hold deadline return their slot to the pool."""
    expired = expire_holds(ctx.db, ctx.config, now=ctx.now, video=ctx.video)
    return Done(plural(expired, "proposal") + " expired", queued=expired > 0)


def digest(ctx: JobContext) -> Done:
    """The staff digest, once per local day when there is something to report."""
    if not staff_digest.enabled(ctx.config):
        return Done("no staff digest ([notify] staff_digest or [mail] is not set)")
    if staff_digest.send_if_due(ctx.db, ctx.config, ctx.now):
        return Done(f"staff digest queued for {ctx.config.school.contact}", queued=True)
    return Done("no staff digest due (sent today already, or nothing to report)")


def purge(ctx: JobContext) -> Done:
    """Delete the personal data of meetings past ``[retention] meetings_days`` and the
    bodies of quarantined messages past ``quarantine_days`` (:func:`ptm_sync.app.retention.
    purge_due`; the anonymous counts stay)."""
    return Done(str(retention.purge_due(ctx.db, ctx.config, now=ctx.now)))
