"""Semantic conventions of decisiontrail: the one event name and every attribute name.

No attribute name is a bare literal anywhere else in the package; docs/semantic-conventions.md
describes each constant (type, requirement level, example) and a test keeps the two in step.
Names follow OpenTelemetry's dotted lower-case style. Official conventions are used where one fits:
``service.name`` on the resource, ``enduser.id`` / ``enduser.pseudo.id`` for the subject of a decision.
"""

from __future__ import annotations

__all__ = ["DECISION_EVENT", "OUTCOME_EVENT", "REVIEW_EVENT", "CHECKPOINT_EVENT", "AUDIT_EVENTS", "REVIEW_ACTIONS",
           "CHECKPOINT_SPAN", "SCOPE_NAME", "ModelAttributes", "DecisionAttributes", "LifecycleAttributes",
           "SubjectAttributes", "CheckpointAttributes", "SpanAttributes"]

DECISION_EVENT = "model.decision"
"""Name of the span event (and, later, the log event) that records one decision."""

OUTCOME_EVENT = "model.decision.outcome"
"""Span event recording what later happened to a past decision (repaid, defaulted, fraud confirmed)."""

REVIEW_EVENT = "model.decision.review"
"""Span event recording a human review of a past decision (confirm, override, escalate, annotate)."""

CHECKPOINT_EVENT = "decision.checkpoint"
"""Name of the span event that holds one signed checkpoint of a process's hash chain."""

AUDIT_EVENTS = (DECISION_EVENT, OUTCOME_EVENT, REVIEW_EVENT, CHECKPOINT_EVENT)
"""Names of every audit event: the hash chain links each of them (chain.ChainStage) and verify checks
them all. Events of other names on an audit span are not part of the trail."""

REVIEW_ACTIONS = ("confirm", "override", "escalate", "annotate")
"""Allowed values of ``decision.review.action``."""

CHECKPOINT_SPAN = "decisiontrail checkpoint"
"""Name of the span that carries one ``decision.checkpoint`` event (with ``decision.audit.records``)."""

SCOPE_NAME = "decisiontrail"
"""Instrumentation scope name of every tracer the package creates."""


class ModelAttributes:
    """Attributes that identify the model that decided."""

    NAME = "model.name"
    """Model name: a registered name, or the model's class name. Required."""
    VERSION = "model.version"
    """Model version: explicit, from configuration, or ``DECISIONTRAIL_MODEL_VERSION``. Recommended."""
    FRAMEWORK = "model.framework"
    """Library that ran the model: ``sklearn``, ``xgboost``, ``lightgbm``, ``onnxruntime``, ``python``."""
    ARTIFACT_HASH = "model.artifact.hash"
    """``sha256:<hex>`` of the serialized model artifact, computed once per model object."""


class DecisionAttributes:
    """Attributes of one ``model.decision`` event."""

    ID = "decision.id"
    """Unique, time-ordered id (UUIDv7 layout) of the decision. Required."""
    INPUT = "decision.input"
    """Canonical JSON of the (redacted) input; over the size cap, its bounded summary (valid JSON, large
    leaves replaced by markers: encoding package docstring). Required."""
    INPUT_HASH = "decision.input.hash"
    """``sha256:<hex>`` of the full canonical JSON of the redacted input, before any bounding."""
    INPUT_REF = "decision.input.ref"
    """URL of the full input in the payload store (content-addressed by ``decision.input.hash``); set
    when the input was bounded and a payload store is configured."""
    OUTPUT = "decision.output"
    """Canonical JSON of the (redacted) output, bounded to the size cap. Required."""
    OUTPUT_HASH = "decision.output.hash"
    """``sha256:<hex>`` of the full canonical JSON of the output; set when the output was bounded."""
    OUTPUT_REF = "decision.output.ref"
    """URL of the full output in the payload store; set when it was bounded and offloaded."""
    LABEL = "decision.label"
    """The decided class or action, as a string (``approve``, ``1``)."""
    SCORE = "decision.score"
    """The model's score of the recorded label, a finite double: the probability of ``decision.label``
    when the model gives probabilities (``predict_proba``), else its own score of that label (the
    margin in favour of it, an anomaly score, a regression's value). Never the probability of another
    class: an approval probability on a ``deny`` decision is written as ``1 - p``."""
    EXPLANATION = "decision.explanation"
    """Canonical JSON of an explanation (feature attributions, rule trace), bounded like the input."""
    EXPLANATION_HASH = "decision.explanation.hash"
    """``sha256:<hex>`` of the full canonical JSON of the explanation; set when it was bounded."""
    EXPLANATION_REF = "decision.explanation.ref"
    """URL of the full explanation in the payload store; set when it was bounded and offloaded."""
    REASON_CODES = "decision.reason_codes"
    """String array of reason codes given to the subject (adverse-action notices)."""
    TRUNCATED = "decision.truncated"
    """String array of the paths of the values replaced by a marker or cut to the size cap: JSON paths
    into the fields (``input.essay``, ``input.rows[0][3]``; ``input`` when the whole field is one
    marker) and names of bounded attributes (``decision.label``, ``decision.reason_codes[2]``)."""
    REDACTED = "decision.redacted"
    """String array of the field paths that were redacted or hashed before export."""
    COLLECTOR_REDACTED = "decision.collector.redacted"
    """String array, added by the collector's ``transform/redact``: the attributes it had to mask (a
    leak past the application's redaction; such a decision no longer verifies, by design)."""
    ERROR = "decision.error"
    """Set when recording partly failed: what failed. The decision is still recorded."""
    BATCH_SIZE = "decision.batch.size"
    """Number of rows in the predict call that produced this decision."""
    BATCH_INDEX = "decision.batch.index"
    """Row index of this decision within its batch (0-based); on a packed batch event, of its first row."""
    BATCH_COUNT = "decision.batch.count"
    """Set only on a packed batch event: the number of rows (decisions) it holds. Row ``i`` of the event
    has id ``offset_id(decision.id, i)``, input ``decision.input.rows[i]``, output
    ``decision.output[i]``, label ``decision.label[i]`` and score ``decision.score[i]``."""
    CHAIN_ID = "decision.chain.id"
    """Id of the hash chain (one per recording process) this decision belongs to."""
    CHAIN_SEQ = "decision.chain.seq"
    """Position in the chain, 1-based, without gaps."""
    CHAIN_PREV = "decision.chain.prev"
    """``decision.chain.hash`` of the previous decision in the chain (empty for the first)."""
    CHAIN_HASH = "decision.chain.hash"
    """sha256 of the canonical JSON of the event's name, other attributes (less ``decision.input``,
    covered by its hash), timestamp, and the trace id and span id it was recorded on."""


class CheckpointAttributes:
    """Attributes of one ``decision.checkpoint`` event (besides the ``decision.chain.*`` link)."""

    NOTE = "decision.checkpoint.note"
    """The checkpoint as a signed note: its text (chain id, head seq and hash, decisions, previous
    checkpoint's hash, time, state) then one signature line per key. Only the note is trusted."""
    STATE = "decision.checkpoint.state"
    """``open`` or ``closed``, set on a checkpoint requested before the chain stage completed it (a
    timer or shutdown); the completed event keeps only the note, which holds the state."""


class LifecycleAttributes:
    """Attributes of the ``model.decision.outcome`` and ``model.decision.review`` events. Both also carry
    ``decision.id`` (the decision they refer to), and the chain fields, ``decision.truncated`` and
    ``decision.redacted`` as decisions do."""

    RECORD_ID = "decision.record.id"
    """Unique, time-ordered id (UUIDv7 layout) of this outcome or review record. Required."""
    OUTCOME_VALUE = "decision.outcome.value"
    """Canonical JSON of the (redacted) observed outcome: the true label, an amount, an object. Required
    on outcomes."""
    OUTCOME_HASH = "decision.outcome.hash"
    """``sha256:<hex>`` of the full canonical JSON of the outcome; set when the outcome was bounded."""
    OUTCOME_OBSERVED_AT = "decision.outcome.observed_at"
    """ISO 8601 UTC time at which the outcome was observed, when it differs from the time it is recorded."""
    OUTCOME_SOURCE = "decision.outcome.source"
    """Where the outcome comes from (``core-banking``, ``chargeback-feed``)."""
    REVIEW_REVIEWER = "decision.review.reviewer"
    """Identity of the human reviewer (a staff id). Required on reviews."""
    REVIEW_ACTION = "decision.review.action"
    """``confirm``, ``override``, ``escalate`` or ``annotate``. Required on reviews."""
    REVIEW_LABEL = "decision.review.label"
    """The reviewer's label: for an override, the label that replaces the model's."""
    REVIEW_OUTPUT = "decision.review.output"
    """Canonical JSON of the (redacted) output the reviewer decided, for an override that changes more
    than the label."""
    REVIEW_OUTPUT_HASH = "decision.review.output.hash"
    """``sha256:<hex>`` of the full canonical JSON of the review's output; set when it was bounded."""
    REVIEW_RATIONALE = "decision.review.rationale"
    """Why: the reviewer's free text, cut to the size cap."""


class SubjectAttributes:
    """Who a decision is about and which business records it belongs to: set for every decision in
    a ``decisiontrail.using_subject`` scope (or by the Flask instrumentor's request mapping), hashed
    or redacted by the recorder's redaction policy like the inputs."""

    ID = "enduser.id"
    """Official OpenTelemetry name: the subject's id in clear, when no hash secret is configured."""
    PSEUDO_ID = "enduser.pseudo.id"
    """Official OpenTelemetry name: the subject's keyed pseudonym (``hmac-sha256:<32 hex>``), when a
    hash secret is configured; ``decisiontrail pseudonym VALUE`` prints it for a given id."""
    KEY = "decision.key"
    """Prefix of the business keys: ``decision.key.<name>`` (``decision.key.loan_id``), a string,
    hashed when ``<name>`` is a hash key of the policy, ``[REDACTED]`` when a redact key."""


class SpanAttributes:
    """Attributes decisiontrail sets on spans (not events)."""

    DECISION_COUNT = "decision.count"
    """Number of ``model.decision`` events on the span. Only spans with decisions carry it, so the
    collector can route audit spans with a plain attribute condition."""
    AUDIT_RECORDS = "decision.audit.records"
    """Number of audit records other than decisions on the span: lifecycle records (outcomes,
    reviews) and chain checkpoints. Such spans are audit spans like decision spans: the processor
    never drops them and the collector routes them to the audit files."""
    DECISION_AUDIT = "decision.audit"
    """``True`` on the spans decisiontrail opens for decisions; the AuditSampler always samples them."""
