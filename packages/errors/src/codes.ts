/**
 * Every error code apb raises, in one closed list: the planner's, the engine's, the runtime's,
 * the control plane's and the CLI's. A code is a public contract (scripts switch on it), so
 * renaming one is a breaking change; the drift test (codes-drift.test.ts) fails when a code
 * is used anywhere in the repository without being listed here, or listed without being used.
 *
 * Exit status is what the CLI exits with: 2 when the user can fix the cause (the input, a
 * file, a flag, the machine's setup, a request that cannot fit), 1 when they cannot (a
 * failure at run time of the driver, the network or another host, or a bug). Retrying a
 * status-2 failure unchanged fails again; a status-1 failure may pass on a retry.
 */
export type HttpStatus = 400 | 401 | 404 | 413 | 415 | 429 | 499 | 500 | 502 | 503;

export interface CodeInfo {
  /** What went wrong, in one sentence. */
  readonly meaning: string;
  readonly exitStatus: 1 | 2;
  /** The HTTP status `apb serve` answers with: 4xx for what the client can fix (429: retry
   * later; 499: the client went away), 5xx for the server's side (503: the hosts are not
   * there now, retry later). */
  readonly httpStatus: HttpStatus;
  /** What to do about it (the error's message gives the specifics). */
  readonly fix: string;
}

export const ERRORS = {
  // ---- Requests and files that do not parse or check (the planner's, shared by everyone) ----
  INVALID_JSON: {
    meaning: "A JSON input does not parse: a request, config.json, a safetensors header, tokenizer.json.",
    exitStatus: 2,
    httpStatus: 400,
    fix: "Fix the file or request the message names; it says where parsing stopped.",
  },
  MISSING_FIELD: {
    meaning: "A required field is missing.",
    exitStatus: 2,
    httpStatus: 400,
    fix: "Add the field at `path` (on the command line, the flag the message names).",
  },
  WRONG_TYPE: {
    meaning: "A field has the wrong type (text for a number, a fraction for a whole number).",
    exitStatus: 2,
    httpStatus: 400,
    fix: "Give the field at `path` the type the message asks for.",
  },
  OUT_OF_RANGE: {
    meaning: "A value is outside its bounds or not one of the allowed values.",
    exitStatus: 2,
    httpStatus: 400,
    fix: "Use a value within the bounds the message gives.",
  },
  UNKNOWN_FIELD: {
    meaning: "The input has a field apb does not know (often a misspelling).",
    exitStatus: 2,
    httpStatus: 400,
    fix: "Remove the field at `path` or correct its spelling.",
  },
  UNKNOWN_OP: {
    meaning: "The planner was asked for an operation it does not have.",
    exitStatus: 2,
    httpStatus: 400,
    fix: "Call one of the operations the message lists (plan, compare, recommend, version).",
  },
  INFEASIBLE: {
    meaning: "Each value is valid but together they admit no layout: more hosts than tokens, a query longer than a block, Ulysses with hosts that do not divide the heads.",
    exitStatus: 2,
    httpStatus: 400,
    fix: "Change the combination as the message says: fewer hosts, a longer context, a shorter query or another strategy.",
  },

  // ---- Requests the engine refuses ----
  INVALID_INPUT: {
    meaning: "The engine cannot run the request as given (an empty document, an option the strategy does not take).",
    exitStatus: 2,
    httpStatus: 400,
    fix: "Change the option at `path` as the message says.",
  },
  PROMPT_TOO_LONG: {
    meaning: "The prompt (document, query and chat template) has more tokens than the model has positions.",
    exitStatus: 2,
    httpStatus: 400,
    fix: "Shorten the document, or use a model made for longer contexts.",
  },

  // ---- Model files ----
  MODEL_FILE: {
    meaning: "A model file is missing, unreadable, truncated or inconsistent with itself, or a named model is unknown.",
    exitStatus: 2,
    httpStatus: 500,
    fix: "Check the path the message names; download or convert the model again.",
  },
  MODEL_FETCH: {
    meaning: "A named model could not be downloaded, or what arrived does not match its pinned hash.",
    exitStatus: 1,
    httpStatus: 500,
    fix: "Check the network (and the PIP_* and HTTPS_PROXY settings) and try again, or download the model yourself and pass its path.",
  },
  TENSOR_MISSING: {
    meaning: "The checkpoint lacks a tensor the architecture needs.",
    exitStatus: 2,
    httpStatus: 500,
    fix: "Use a complete checkpoint of a supported architecture; `path` names the tensor.",
  },
  TENSOR_SHAPE: {
    meaning: "A tensor's shape does not match the model's config, or its data does not match its shape.",
    exitStatus: 2,
    httpStatus: 500,
    fix: "Use the config.json that belongs to these weights, or download the weights again.",
  },
  TENSOR_DTYPE: {
    meaning: "A tensor is stored in a data type apb does not read.",
    exitStatus: 2,
    httpStatus: 500,
    fix: "Convert the checkpoint to one of the types the message lists (bf16, f16, f32 or a listed GGUF quantization).",
  },
  UNSUPPORTED_ARCHITECTURE: {
    meaning: "The model, or a feature of it, is not one the engine runs.",
    exitStatus: 2,
    httpStatus: 500,
    fix: "Use a Llama-family model (Llama 2/3/3.1, Mistral, Qwen2/2.5, Yi) without the feature the message names.",
  },
  TOKENIZER: {
    meaning: "The tokenizer or chat template cannot be loaded or used.",
    exitStatus: 2,
    httpStatus: 400,
    fix: "Check tokenizer.json (or the GGUF's tokenizer metadata) and the chat template the message names.",
  },
  NUMERIC: {
    meaning: "NaN or infinity in the model's weights or in the logits it produced.",
    exitStatus: 2,
    httpStatus: 500,
    fix: "Download or convert the model again (weights must be finite); a float16 model whose activations overflow needs its bfloat16 or float32 checkpoint.",
  },

  // ---- GPUs and hosts ----
  CUDA_UNAVAILABLE: {
    meaning: "The CUDA backend cannot run here: no NVIDIA driver or GPU, a build without kernels, a GPU older than compute capability 8.0, or a head size the kernels lack.",
    exitStatus: 2,
    httpStatus: 503,
    fix: "Run `apb doctor` and do what it says, or use `--backend cpu`.",
  },
  NCCL_UNAVAILABLE: {
    meaning: "Joining GPU hosts needs NCCL 2.14 or newer, which this machine lacks or cannot load.",
    exitStatus: 2,
    httpStatus: 503,
    fix: "Install NCCL (the message gives the command) or put its directory on LD_LIBRARY_PATH.",
  },
  GPU_MEMORY: {
    meaning: "The weights or the request do not fit the GPU's free memory.",
    exitStatus: 2,
    httpStatus: 400,
    fix: "Use a shorter context, more hosts or a smaller model, or free the GPU.",
  },
  CUDA: {
    meaning: "A call to the CUDA driver, cuBLAS or a kernel launch failed while running.",
    exitStatus: 1,
    httpStatus: 500,
    fix: "Run `apb doctor`; if the GPU is healthy, try again and report the message if it repeats.",
  },
  COMM: {
    meaning: "Hosts could not exchange data (a socket closed, NCCL failed, a host stopped).",
    exitStatus: 1,
    httpStatus: 502,
    fix: "Check that every host is up and reachable, then try again.",
  },

  // ---- Lifecycle ----
  CANCELLED: {
    meaning: "The caller cancelled the work (an AbortSignal, Ctrl-C, a cancelled job). Ctrl-C makes the CLI exit 130, as shells expect.",
    exitStatus: 1,
    httpStatus: 499,
    fix: "Nothing to fix; run it again to finish it.",
  },
  DISPOSED: {
    meaning: "A model was used after it was disposed.",
    exitStatus: 1,
    httpStatus: 500,
    fix: "Load the model again before using it (from the CLI, report it: the CLI never does this).",
  },

  // ---- The control plane (the protocol's CONTROL_ERROR_CODES) ----
  BAD_FRAME: {
    meaning: "A control-plane frame is not JSON, not an object, or has a field of the wrong type or out of bounds.",
    exitStatus: 1,
    httpStatus: 502,
    fix: "Run the same apb version on every host; report it if they match.",
  },
  FRAME_TOO_LARGE: {
    meaning: "A control-plane frame is over the frame size limit.",
    exitStatus: 1,
    httpStatus: 502,
    fix: "Send smaller jobs (a shorter document per job); report it if an apb host sent it.",
  },
  UNSUPPORTED_VERSION: {
    meaning: "A peer speaks another version of the control-plane protocol.",
    exitStatus: 2,
    httpStatus: 502,
    fix: "Run the same apb version on the coordinator and every host.",
  },
  UNAUTHORIZED: {
    meaning: "A host or caller did not give the coordinator's token, or an HTTP client the server's API key.",
    exitStatus: 2,
    httpStatus: 401,
    fix: "Pass the coordinator's token with --token or APB_TOKEN; an HTTP client sends `Authorization: Bearer KEY` with the server's --api-key.",
  },
  DUPLICATE_HELLO: {
    meaning: "A connection said hello twice.",
    exitStatus: 1,
    httpStatus: 502,
    fix: "A bug in the peer: report it.",
  },
  NOT_ALLOWED: {
    meaning: "A peer sent a message it may not send (a host's submit, anything before hello).",
    exitStatus: 1,
    httpStatus: 502,
    fix: "A bug in the peer, or another program on the port: check the address, then report it.",
  },
  HELLO_TIMEOUT: {
    meaning: "A connection said no hello in time.",
    exitStatus: 1,
    httpStatus: 502,
    fix: "Check that what connects to the coordinator is an apb host or client.",
  },
  MODEL_MISMATCH: {
    meaning: "A host loaded another model than the group's.",
    exitStatus: 2,
    httpStatus: 502,
    fix: "Give every host the same model (same file, same fingerprint).",
  },
  GROUP_TIMEOUT: {
    meaning: "The hosts did not all join in time.",
    exitStatus: 1,
    httpStatus: 503,
    fix: "Start the missing hosts (the message counts them) or allow more time (--group-timeout-ms).",
  },
  HOST_LOST: {
    meaning: "A host's connection closed or its heartbeats stopped.",
    exitStatus: 1,
    httpStatus: 503,
    fix: "Check the host the message names (its log, its network), then try again.",
  },
  JOB_ABORTED: {
    meaning: "The coordinator aborted a job because a host failed or the group dissolved.",
    exitStatus: 1,
    httpStatus: 503,
    fix: "Look for the host's own error in its log, then try again.",
  },
  BUSY: {
    meaning: "The coordinator has too many jobs queued to take another.",
    exitStatus: 1,
    httpStatus: 429,
    fix: "Try again later.",
  },
  INVALID_JOB: {
    meaning: "A job spec fails its schema before it is sent.",
    exitStatus: 2,
    httpStatus: 400,
    fix: "Fix the job's field at `path`.",
  },
  INVALID_OPTIONS: {
    meaning: "A coordinator, host or client was started with options it cannot use.",
    exitStatus: 2,
    httpStatus: 500,
    fix: "Fix the option at `path` (on the command line, its flag).",
  },
  SHUTDOWN: {
    meaning: "The coordinator or host is shutting down.",
    exitStatus: 1,
    httpStatus: 503,
    fix: "Start it again and resubmit.",
  },
  CONNECT: {
    meaning: "A client or host could not reach the coordinator.",
    exitStatus: 1,
    httpStatus: 502,
    fix: "Check the coordinator's address and that it is running and reachable.",
  },
  LISTEN: {
    meaning: "The coordinator could not listen on its address (in use, or not this machine's).",
    exitStatus: 2,
    httpStatus: 500,
    fix: "Choose a free port or an address of this machine with --listen.",
  },

  // ---- The HTTP server (apb serve) ----
  UNKNOWN_MODEL: {
    meaning: "A request names a model the server does not serve.",
    exitStatus: 2,
    httpStatus: 404,
    fix: "Use a model id that GET /v1/models lists (the server's --model-name).",
  },
  UNKNOWN_ROUTE: {
    meaning: "No endpoint has this method and path.",
    exitStatus: 2,
    httpStatus: 404,
    fix: "Use one of the endpoints the message lists (POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, GET /metrics).",
  },
  REQUEST_TOO_LARGE: {
    meaning: "A request body is over the server's size limit.",
    exitStatus: 2,
    httpStatus: 413,
    fix: "Send a shorter document, or start the server with a larger --max-body-bytes.",
  },
  UNSUPPORTED_MEDIA_TYPE: {
    meaning: "A request body is not JSON.",
    exitStatus: 2,
    httpStatus: 415,
    fix: "Send the body as JSON with `Content-Type: application/json`.",
  },

  // ---- The CLI ----
  USAGE: {
    meaning: "The command line is wrong: an unknown command or option, a missing or malformed flag, flags that exclude each other.",
    exitStatus: 2,
    httpStatus: 400,
    fix: "Correct the command line as the message says (`apb <command> --help` lists the options).",
  },
  WORKER_EXITED: {
    meaning: "A worker process that `apb run --processes` or `apb serve` started exited before the job finished.",
    exitStatus: 1,
    httpStatus: 503,
    fix: "Read the worker's output above the error; its own error says why.",
  },

  // ---- Bugs ----
  INTERNAL: {
    meaning: "An invariant broke: a bug in apb.",
    exitStatus: 1,
    httpStatus: 500,
    fix: "Report it with the command and the message.",
  },
} as const satisfies Record<string, CodeInfo>;

export type ErrorCode = keyof typeof ERRORS;

/** The codes in the list's order (the order of docs/ERRORS.md). */
export const ERROR_CODES = Object.freeze(Object.keys(ERRORS)) as readonly ErrorCode[];

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERRORS, code);
}

/** The CLI's exit status for an error of `code`: 2 when the user can fix it, else 1 (unknown codes included). */
export function exitStatusOf(code: string): 1 | 2 {
  return isErrorCode(code) ? ERRORS[code].exitStatus : 1;
}

/** The HTTP status for an error of `code` (500 for a code apb does not know). */
export function httpStatusOf(code: string): HttpStatus {
  return isErrorCode(code) ? ERRORS[code].httpStatus : 500;
}

/** Errors are data: a stable code, a message that says what, why and how to fix it, and the input field, tensor or file it is about ("" when none). */
export interface ErrorData<Code extends string = ErrorCode> {
  code: Code;
  message: string;
  path: string;
}
