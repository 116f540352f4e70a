"""Baseline of the mapping benchmark: the SA_SYNC request mapping written by hand in Python.

What a developer would write without the mapping compiler: the same typed models, built through
their validating constructors, with the same code tables and function library.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from ccbmdm.runtime.messages import functions
from ccbmdm.runtime.messages.mapping import Context

_STATUS = {
    "ACTIVE": "ACTIVE",
    "PENDSTOP": "ACTIVE",
    "REACTIVATED": "ACTIVE",
    "STOPPED": "INACTIVE",
    "CLOSED": "INACTIVE",
}


def transform(source: Any, ctx: Context, models: ModuleType) -> Any:
    """ccb/ServiceAgreementSyncRequest -> mdm/UsageSubscriptionSyncRequest, by hand."""
    mdm = models.mdm
    send = source.send_details
    agreement = source.service_agreement
    subscription = None
    if agreement is not None:
        zone = agreement.time_zone
        subscription = mdm.UsageSubscriptionType(
            external_id=agreement.sa_id,
            external_account_id=agreement.account_id,
            us_type=ctx.tables.lookup(
                0, "OUCCB2_OUMDM2_USType", (agreement.sa_type, agreement.cis_division), "usType"
            ),
            division=agreement.cis_division,
            start_date_time=functions.start_of_day(agreement.start_date, zone),
            end_date_time=None
            if agreement.end_date is None
            else functions.start_of_day(agreement.end_date, zone),
            status=_STATUS[agreement.sa_status],
            main_contact_external_id=agreement.person_id,
            usage_groups=tuple(
                mdm.UsageGroupType(
                    usage_group_external_id=rate.rate_schedule,
                    start_date_time=functions.start_of_day(rate.effective_date, zone),
                )
                for rate in agreement.rate_history
            ),
            service_points=tuple(
                mdm.UsServicePointType(
                    sp_external_id=link.sp_id,
                    start_date_time=functions.in_zone(link.start_date_time, zone),
                    end_date_time=None
                    if link.stop_date_time is None
                    else functions.in_zone(link.stop_date_time, zone),
                )
                for link in agreement.sp_links
            ),
            summary_billed=agreement.summary_billed,
        )
    return mdm.UsageSubscriptionSyncRequest(
        message_header=source.message_header,
        external_reference_id=send.sync_request_id,
        external_system=send.source_system,
        initial_load=send.initial_load,
        target_mo=ctx.tables.lookup(0, "OUCCB2_OUMDM2_MO", (send.mo,), "targetMo"),
        external_pk_value1=send.pk_value1,
        external_pk_value2=send.pk_value2,
        external_pk_value3=send.pk_value3,
        external_pk_value4=send.pk_value4,
        external_pk_value5=send.pk_value5,
        change_type=source.change_type,
        entity_version=source.entity_version,
        usage_subscription=subscription,
    )
