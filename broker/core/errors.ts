// Errors the control plane answers with (mapped to HTTP problems by the admin API), and who acted.
// A leaf module: every service that refuses an admin request throws ControlError from here, so no
// service needs to import the control-plane facade (which imports the services).

export class ControlError extends Error {
  constructor (readonly status: 400 | 404 | 409 | 503, readonly title: string, detail: string) {
    super(detail)
  }
}

/** Who asked for a change: an admin token id and role (or the CLI/bootstrap), for audit events. */
export interface Actor {
  id: string
  role: string
  address?: string
}
