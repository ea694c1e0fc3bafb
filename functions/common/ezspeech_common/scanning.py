"""Image scan results → one alert per image digest per scan result, at or above a severity.

The three scan events (ECR basic "ECR Image Scan", Inspector "Inspector2 Scan" and the
per-finding "Inspector2 Finding" stream) are normalised to one :class:`ImageScan`. The complete
picture (counts by severity, the worst findings, when the scan completed) then comes from ECR's
DescribeImageScanFindings, which serves basic and enhanced (Inspector) results alike. The scan's
completion time is what identifies "a scan result": every event of one scan, and every repeated
delivery, maps to the same (repository, digest, completed-at) key, so one alert goes out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ezspeech_common.ecs import describe_service, describe_task_definition
from ezspeech_common.errors import ServiceNotFoundError
from ezspeech_common.events.scans import EcrImageScanEvent, InspectorFindingEvent, InspectorScanEvent

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_ecs import ECSClient

SEVERITIES = ("INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL")
_MISSING_IMAGE = ("ImageNotFoundException", "ScanNotFoundException", "RepositoryNotFoundException")


def severity_rank(severity: str) -> int:
    """Position in SEVERITIES; UNDEFINED/UNTRIAGED and unknown names rank below INFORMATIONAL."""
    upper = severity.upper()
    return SEVERITIES.index(upper) if upper in SEVERITIES else -1


@dataclass(frozen=True)
class ScanSettings:
    threshold: str = "HIGH"
    cluster: str = ""
    service: str = ""
    top_findings: int = 5

    def __post_init__(self) -> None:
        if self.threshold.upper() not in SEVERITIES:
            raise ValueError(f"SEVERITY_THRESHOLD must be one of {SEVERITIES}, got {self.threshold!r}")


@dataclass(frozen=True)
class Finding:
    name: str
    severity: str
    package: str = ""
    link: str = ""
    score: float = 0.0


@dataclass
class ImageScan:
    """One scan event, whatever its source, for an ECR image."""

    source: str
    repository: str
    digest: str
    tags: list[str]
    region: str
    account: str
    event_time: str
    status: str
    counts: dict[str, int]
    triggering_finding: Finding | None = None
    completed_at: str = ""
    findings: list[Finding] = field(default_factory=list)


@dataclass
class Alert:
    repository: str
    digest: str
    scan_result_id: str
    source: str
    threshold: str
    tags: list[str]
    counts: dict[str, int]
    at_or_above_threshold: int
    top_findings: list[Finding]
    running_in_service: bool | None
    console_url: str

    @property
    def escalated(self) -> bool:
        return bool(self.running_in_service)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "escalated": self.escalated}


@dataclass
class AlertSent:
    """The once-only unit's result: which image's scan result was announced, and as what."""

    repository: str
    digest: str
    scan_result_id: str
    message_id: str
    escalated: bool
    status: str = "alerted"
    #: True when idempotency handed back the stored result of an earlier delivery.
    duplicate: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertSent:
        return cls(**data)


def image_scan_from_event(
    event: EcrImageScanEvent | InspectorScanEvent | InspectorFindingEvent,
) -> ImageScan | None:
    """Normalise a scan event; None when it is not about an ECR image (e.g. an EC2 scan)."""
    time = event.time.isoformat()
    if isinstance(event, InspectorFindingEvent):
        image = event.detail.ecr_image
        if image is None or not image.image_hash:
            return None
        details = event.detail.package_vulnerability_details
        finding = Finding(
            name=event.detail.title or (details.vulnerability_id if details else event.detail.finding_arn),
            severity=event.detail.severity.upper(),
            link=_first_link(
                details.source_url if details else "", details.reference_urls if details else ()
            ),
            score=event.detail.inspector_score or 0.0,
        )
        return ImageScan(
            source="inspector2-finding",
            repository=image.repository_name,
            digest=image.image_hash,
            tags=list(image.image_tags),
            region=event.region,
            account=event.account,
            event_time=event.detail.last_observed_at or time,
            status=event.detail.status,
            counts={finding.severity: 1},
            triggering_finding=finding,
        )
    detail = event.detail
    if not detail.image_digest or not detail.repository_name:
        return None
    repository = detail.repository_name
    if repository.startswith("arn:") and ":repository/" in repository:  # Inspector sends the ARN
        repository = repository.split(":repository/", 1)[1]
    counts = {k.upper(): int(v) for k, v in detail.finding_severity_counts.items() if k.upper() != "TOTAL"}
    return ImageScan(
        source="ecr" if isinstance(event, EcrImageScanEvent) else "inspector2-scan",
        repository=repository,
        digest=detail.image_digest,
        tags=list(detail.image_tags),
        region=event.region,
        account=event.account,
        event_time=time,
        status=detail.scan_status,
        counts=counts,
    )


def scan_is_complete(scan: ImageScan) -> bool:
    if scan.source == "inspector2-finding":
        return scan.status.upper() == "ACTIVE"  # SUPPRESSED and CLOSED findings need no alert
    return scan.status.upper() in ("COMPLETE", "INITIAL_SCAN_COMPLETE")


def add_scan_findings(ecr: ECRClient, scan: ImageScan, max_pages: int = 3) -> ImageScan:
    """Fill counts, findings and completion time from ECR; keep the event's data if ECR has none."""
    findings: list[Finding] = []
    counts: dict[str, int] = {}
    completed = ""
    token = ""
    for _ in range(max_pages):
        kwargs: dict[str, Any] = {"repositoryName": scan.repository, "imageId": {"imageDigest": scan.digest}}
        if token:
            kwargs["nextToken"] = token
        try:
            page = ecr.describe_image_scan_findings(**kwargs)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING_IMAGE:
                return scan
            raise
        results = page.get("imageScanFindings", {})
        counts = {k.upper(): int(v) for k, v in results.get("findingSeverityCounts", {}).items()} or counts
        completed = completed or _iso(results.get("imageScanCompletedAt"))
        findings.extend(_basic_finding(dict(f)) for f in results.get("findings", []))
        findings.extend(_enhanced_finding(dict(f)) for f in results.get("enhancedFindings", []))
        token = page.get("nextToken", "")
        if not token:
            break
    if counts:
        scan.counts = counts
    scan.completed_at = completed
    scan.findings = findings
    return scan


def running_digests(ecs: ECSClient, cluster: str, service: str) -> set[str] | None:
    """Image digests the service runs now (its tasks, and a digest-pinned task definition).

    None when that cannot be known (no service configured, or ECS refused): the alert then says
    "unknown" rather than guessing.
    """
    if not cluster or not service:
        return None
    digests: set[str] = set()
    try:
        arns = ecs.list_tasks(cluster=cluster, serviceName=service, desiredStatus="RUNNING").get(
            "taskArns", []
        )
        for start in range(0, len(arns), 100):
            tasks = ecs.describe_tasks(cluster=cluster, tasks=arns[start : start + 100]).get("tasks", [])
            digests.update(
                c["imageDigest"] for t in tasks for c in t.get("containers", []) if c.get("imageDigest")
            )
        try:
            running = describe_service(ecs, cluster, service)
        except ServiceNotFoundError:
            return digests  # no service, so no revision pinning a digest: its tasks tell all
        definition, _ = describe_task_definition(ecs, str(running["taskDefinition"]))
        for container in definition.get("containerDefinitions", []):
            image = str(container.get("image", ""))
            if "@sha256:" in image:
                digests.add(image.split("@", 1)[1])
    except ClientError:
        return None
    return digests


def count_at_or_above(counts: dict[str, int], threshold: str) -> int:
    floor = severity_rank(threshold)
    return sum(n for severity, n in counts.items() if severity_rank(severity) >= floor)


def build_alert(scan: ImageScan, settings: ScanSettings, running: set[str] | None) -> Alert | None:
    """The alert for this scan, or None when nothing is at or above the threshold."""
    floor = severity_rank(settings.threshold)
    at_or_above = count_at_or_above(scan.counts, settings.threshold)
    if at_or_above == 0:
        return None
    findings = list(scan.findings)
    if scan.triggering_finding and all(f.name != scan.triggering_finding.name for f in findings):
        findings.append(scan.triggering_finding)
    findings.sort(key=lambda f: (severity_rank(f.severity), f.score), reverse=True)
    top = [f for f in findings if severity_rank(f.severity) >= floor][: settings.top_findings]
    return Alert(
        repository=scan.repository,
        digest=scan.digest,
        scan_result_id=scan.completed_at or scan.event_time,
        source=scan.source,
        threshold=settings.threshold.upper(),
        tags=scan.tags,
        counts=dict(sorted(scan.counts.items(), key=lambda kv: -severity_rank(kv[0]))),
        at_or_above_threshold=at_or_above,
        top_findings=top,
        running_in_service=None if running is None else scan.digest in running,
        console_url=(
            f"https://{scan.region}.console.aws.amazon.com/ecr/repositories/private/{scan.account}/"
            f"{scan.repository}/_/image/{scan.digest}/details?region={scan.region}"
        ),
    )


def alert_text(alert: Alert) -> tuple[str, list[str]]:
    """Subject and readable lines of an alert."""
    short = alert.digest.split(":", 1)[-1][:12]
    running = {True: "YES - the service runs this image now", False: "no", None: "unknown"}[
        alert.running_in_service
    ]
    prefix = "[ezspeech][ESCALATED]" if alert.escalated else "[ezspeech]"
    subject = (
        f"{prefix} {alert.at_or_above_threshold} {alert.threshold}+ findings in {alert.repository}@{short}"
    )
    lines = [
        f"Image scan ({alert.source}) found {alert.at_or_above_threshold} findings "
        f"at or above {alert.threshold}.",
        f"repository: {alert.repository}",
        f"digest:     {alert.digest}",
        f"tags:       {', '.join(alert.tags) or '-'}",
        f"counts:     {', '.join(f'{k} {v}' for k, v in alert.counts.items())}",
        f"running:    {running}",
        f"scan:       {alert.scan_result_id}",
        f"console:    {alert.console_url}",
        "top findings:",
    ]
    lines.extend(f"  - {f.severity} {f.name} {f.package} {f.link}".rstrip() for f in alert.top_findings)
    return subject, lines


def _basic_finding(raw: dict[str, Any]) -> Finding:
    attributes = {a.get("key"): a.get("value", "") for a in raw.get("attributes", [])}
    package = " ".join(p for p in (attributes.get("package_name"), attributes.get("package_version")) if p)
    score = attributes.get("CVSS3_SCORE") or attributes.get("CVSS2_SCORE") or 0
    return Finding(
        name=str(raw.get("name", "")),
        severity=str(raw.get("severity", "UNDEFINED")).upper(),
        package=package,
        link=str(raw.get("uri", "")),
        score=_float(score),
    )


def _enhanced_finding(raw: dict[str, Any]) -> Finding:
    details = raw.get("packageVulnerabilityDetails", {})
    packages = details.get("vulnerablePackages", [])
    package = f"{packages[0].get('name', '')} {packages[0].get('version', '')}".strip() if packages else ""
    return Finding(
        name=str(raw.get("title") or details.get("vulnerabilityId", "")),
        severity=str(raw.get("severity", "UNDEFINED")).upper(),
        package=package,
        link=_first_link(details.get("sourceUrl", ""), details.get("referenceUrls", [])),
        score=_float(raw.get("score", 0)),
    )


def _first_link(source_url: str, reference_urls: Sequence[str]) -> str:
    return source_url or (reference_urls[0] if reference_urls else "")


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value or "")
