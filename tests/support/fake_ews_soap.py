"""The SOAP wire of the fake Exchange server (:mod:`tests.support.fake_ews`): namespaces, the
envelope with its ``ServerVersionInfo`` header (Exchange 2016), SOAP faults, ResponseMessage /
ResponseCode and the ``<Operation>Response`` around them.

Written from Microsoft's EWS reference ("EWS reference for Exchange": "ResponseMessage",
"ResponseCode", "ServerVersionInfo") and "EWS throttling in Exchange" (a fault's
``e:ResponseCode`` and, for ErrorServerBusy, ``t:MessageXml/t:Value
Name=BackOffMilliseconds``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from lxml import etree

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
#: The headers of an HTTP answer; a list is one header line per value.
Headers = Mapping[str, str | list[str]]
#: The Content-Type of every SOAP answer.
XML = {"Content-Type": "text/xml; charset=utf-8"}


def t(name: str) -> str:
    """``name`` in the types namespace (``t:``)."""
    return f"{{{T}}}{name}"


def m(name: str) -> str:
    """``name`` in the messages namespace (``m:``)."""
    return f"{{{M}}}{name}"


def parse_time(text: str) -> datetime:
    """An xs:dateTime of a request, in UTC (no offset: UTC)."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def iso(value: datetime) -> str:
    """``value`` as the xs:dateTime the fake stores and answers (UTC, ``Z``)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Fault(Exception):
    """A SOAP fault answer (HTTP 500)."""

    def __init__(self, code: str, text: str, back_off_ms: int | None = None) -> None:
        super().__init__(text)
        self.code, self.text, self.back_off_ms = code, text, back_off_ms


class ItemError(Exception):
    """A per-item ResponseMessage with ResponseClass Error."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code, self.text = code, text


class Verbatim(Exception):
    """An answer sent as these bytes, as they are (a case file)."""

    def __init__(self, data: bytes) -> None:
        super().__init__("verbatim answer")
        self.data = data


def soap_envelope(body: Any) -> bytes:
    """The whole answer: ``body`` in a SOAP envelope with Exchange 2016's version header."""
    envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"s": SOAP})
    header = etree.SubElement(envelope, f"{{{SOAP}}}Header")
    etree.SubElement(
        header,
        t("ServerVersionInfo"),
        nsmap={"h": T},
        MajorVersion="15",
        MinorVersion="1",
        MajorBuildNumber="2507",
        MinorBuildNumber="6",
        Version="Exchange2016",
    )
    etree.SubElement(envelope, f"{{{SOAP}}}Body").append(body)
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


def soap_fault(fault: Fault) -> Any:
    """The ``s:Fault`` body of ``fault`` (with BackOffMilliseconds when it has one)."""
    element = etree.Element(f"{{{SOAP}}}Fault", nsmap={"s": SOAP})
    etree.SubElement(element, "faultcode").text = f"a:{fault.code}"
    etree.SubElement(element, "faultstring").text = fault.text
    detail = etree.SubElement(element, "detail")
    etree.SubElement(detail, f"{{{E}}}ResponseCode", nsmap={"e": E}).text = fault.code
    etree.SubElement(detail, f"{{{E}}}Message", nsmap={"e": E}).text = fault.text
    if fault.back_off_ms is not None:
        xml = etree.SubElement(detail, t("MessageXml"), nsmap={"t": T})
        etree.SubElement(xml, t("Value"), Name="BackOffMilliseconds").text = str(fault.back_off_ms)
    return element


def response_message(operation: str, error: ItemError | None = None) -> Any:
    """One ``<Operation>ResponseMessage``: Success with NoError, or ``error``'s Error."""
    message = etree.Element(
        m(f"{operation}ResponseMessage"),
        nsmap={"m": M, "t": T},
        ResponseClass="Error" if error else "Success",
    )
    if error:
        etree.SubElement(message, m("MessageText")).text = error.text
    etree.SubElement(message, m("ResponseCode")).text = error.code if error else "NoError"
    return message


def operation_response(operation: str, messages: list[Any]) -> Any:
    """The ``<Operation>Response`` holding ``messages`` in its ResponseMessages."""
    response = etree.Element(m(f"{operation}Response"), nsmap={"m": M, "t": T})
    container = etree.SubElement(response, m("ResponseMessages"))
    for message in messages:
        container.append(message)
    return response
