/**
 * Why the witness did not cosign a checkpoint, with the C2SP tlog-witness status code
 * (https://c2sp.org/tlog-witness): the reason is the `reason` label of
 * audit_witness_refused_total.
 */

export type RefusalReason =
  /** 404: no configured log has the checkpoint's origin. */
  | "unknown_log"
  /** 403: no valid signature by the log's keys, or an invalid one by a known key. */
  | "bad_signature"
  /** 409: the old size is not the size the witness last cosigned (a client behind). */
  | "stale_old_size"
  /** 422: a proof where none belongs, or a size-0 checkpoint without the empty tree's root. */
  | "invalid_proof"
  /** 422 (or 409): a signed tree that does not extend the one cosigned: the log forked. */
  | "fork"
  /** 409: a signed checkpoint smaller than the one cosigned. */
  | "rollback"
  /** 400 (413 when too large): not an add-checkpoint body, or a malformed note or checkpoint. */
  | "malformed";

export interface Refusal {
  status: 400 | 403 | 404 | 409 | 413 | 422;
  reason: RefusalReason;
  /** Said to the client (one line) and logged. */
  message: string;
  /** With 409: the size of the latest cosigned checkpoint, which is the response body. */
  latestSize?: number;
}

export function refusal(
  status: Refusal["status"],
  reason: RefusalReason,
  message: string,
): Refusal {
  return { status, reason, message };
}
