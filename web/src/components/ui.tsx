/**
 * The UI's building blocks, written here on native elements that already do the hard
 * accessibility work: <dialog> (modal focus, Escape, focus return), <details> (disclosure),
 * <label> (names for inputs), <table> (relationships for screen readers).
 *
 * Everything third parties control (payloads, receiver responses, headers, names, URLs) is
 * rendered as React text children, which the DOM treats as text, never as markup.
 */
import {
  useEffect, useId, useRef, useState,
  type ComponentProps, type InputHTMLAttributes, type ReactNode, type SelectHTMLAttributes, type TextareaHTMLAttributes,
} from 'react';

export const cx = (...c: (string | false | null | undefined)[]) => c.filter(Boolean).join(' ');

type Variant = 'primary' | 'secondary' | 'danger' | 'ghost';
const variants: Record<Variant, string> = {
  primary: 'bg-accent text-white hover:opacity-90 border-transparent',
  secondary: 'bg-white text-slate-800 border-slate-300 hover:bg-slate-50',
  danger: 'bg-white text-red-700 border-red-300 hover:bg-red-50',
  ghost: 'bg-transparent text-slate-700 border-transparent hover:bg-slate-100',
};

export function Button({ variant = 'secondary', className, busy, children, ...rest }: ComponentProps<'button'> & { variant?: Variant; busy?: boolean }) {
  return (
    <button
      type="button"
      className={cx('inline-flex min-h-10 items-center justify-center gap-1.5 rounded-md border px-3 py-1.5 text-sm font-medium disabled:cursor-not-allowed disabled:opacity-50', variants[variant], className)}
      disabled={busy || rest.disabled}
      aria-busy={busy || undefined}
      {...rest}
    >
      {children}
    </button>
  );
}

export function Field({ label, hint, error, children, id }: { label: string; hint?: ReactNode; error?: string | null; id: string; children: ReactNode }) {
  return (
    <div className="flex flex-col gap-1">
      <label htmlFor={id} className="text-sm font-medium text-slate-800">{label}</label>
      {children}
      {hint && <p id={`${id}-hint`} className="text-xs text-slate-500">{hint}</p>}
      {error && <p id={`${id}-error`} className="text-xs text-red-700" role="alert">{error}</p>}
    </div>
  );
}

const inputClass = 'w-full rounded-md border border-slate-300 bg-white px-3 py-2 text-sm text-slate-900 placeholder:text-slate-400 disabled:bg-slate-100';

export function Input({ className, ...rest }: InputHTMLAttributes<HTMLInputElement>) {
  return <input className={cx(inputClass, className)} {...rest} />;
}
export function Textarea({ className, ...rest }: TextareaHTMLAttributes<HTMLTextAreaElement>) {
  return <textarea className={cx(inputClass, 'font-mono text-xs', className)} {...rest} />;
}
export function Select({ className, ...rest }: SelectHTMLAttributes<HTMLSelectElement>) {
  return <select className={cx(inputClass, className)} {...rest} />;
}

/** A labelled input in one line of JSX. */
export function TextField({ label, hint, error, ...rest }: InputHTMLAttributes<HTMLInputElement> & { label: string; hint?: ReactNode; error?: string | null }) {
  const id = useId();
  return (
    <Field id={id} label={label} hint={hint} error={error}>
      <Input id={id} aria-describedby={hint ? `${id}-hint` : undefined} aria-invalid={error ? true : undefined} {...rest} />
    </Field>
  );
}

export function Checkbox({ label, ...rest }: InputHTMLAttributes<HTMLInputElement> & { label: ReactNode }) {
  return (
    <label className="inline-flex min-h-8 items-center gap-2 text-sm">
      <input type="checkbox" className="size-4 accent-(--accent)" {...rest} />
      <span>{label}</span>
    </label>
  );
}

/**
 * A modal dialog on the native <dialog>: showModal() makes the rest of the page inert, traps
 * focus, closes on Escape and returns focus to the opener.
 */
export function Dialog({ open, onClose, title, children, wide }: { open: boolean; onClose: () => void; title: string; children: ReactNode; wide?: boolean }) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return (
    <dialog
      ref={ref}
      aria-labelledby={titleId}
      onClose={onClose}
      className={cx('m-auto w-[calc(100%-1.5rem)] rounded-lg border border-slate-200 bg-white p-0 text-slate-900 shadow-xl', wide ? 'max-w-3xl' : 'max-w-lg')}
    >
      {open && (
        <div className="flex max-h-[85vh] flex-col">
          <div className="flex items-center justify-between gap-2 border-b border-slate-200 px-4 py-3">
            <h2 id={titleId} className="text-base font-semibold">{title}</h2>
            <Button variant="ghost" aria-label="Close" onClick={onClose}>✕</Button>
          </div>
          <div className="overflow-y-auto px-4 py-4">{children}</div>
        </div>
      )}
    </dialog>
  );
}

export function Card({ title, actions, children, className }: { title?: ReactNode; actions?: ReactNode; children: ReactNode; className?: string }) {
  return (
    <section className={cx('rounded-lg border border-slate-200 bg-white', className)}>
      {(title || actions) && (
        <div className="flex flex-wrap items-center justify-between gap-2 border-b border-slate-200 px-4 py-3">
          {title && <h2 className="text-sm font-semibold text-slate-800">{title}</h2>}
          {actions && <div className="flex flex-wrap gap-2">{actions}</div>}
        </div>
      )}
      <div className="p-4">{children}</div>
    </section>
  );
}

export function PageHeader({ title, subtitle, actions }: { title: ReactNode; subtitle?: ReactNode; actions?: ReactNode }) {
  return (
    <div className="mb-4 flex flex-wrap items-start justify-between gap-3">
      <div className="min-w-0">
        <h1 tabIndex={-1} className="break-words text-xl font-semibold outline-none">{title}</h1>
        {subtitle && <div className="mt-0.5 break-words text-sm text-slate-500">{subtitle}</div>}
      </div>
      {actions && <div className="flex flex-wrap gap-2">{actions}</div>}
    </div>
  );
}

const badgeTone = {
  green: 'bg-emerald-50 text-emerald-800 border-emerald-200',
  red: 'bg-red-50 text-red-800 border-red-200',
  amber: 'bg-amber-50 text-amber-800 border-amber-200',
  slate: 'bg-slate-100 text-slate-700 border-slate-200',
  blue: 'bg-sky-50 text-sky-800 border-sky-200',
};
export function Badge({ tone = 'slate', children }: { tone?: keyof typeof badgeTone; children: ReactNode }) {
  return <span className={cx('inline-flex items-center rounded-full border px-2 py-0.5 text-xs font-medium whitespace-nowrap', badgeTone[tone])}>{children}</span>;
}

/** Delivery status of a message at an endpoint or of an attempt (0 success, 1 pending, 2 fail, 3 sending). */
export function StatusBadge({ status }: { status: number }) {
  const [tone, text] = ([['green', 'Succeeded'], ['amber', 'Pending'], ['red', 'Failed'], ['blue', 'Sending']] as const)[status] ?? (['slate', 'Unknown'] as const);
  return <Badge tone={tone}>{text}</Badge>;
}

export function HealthBadge({ state }: { state: 'healthy' | 'failing' | 'disabled' }) {
  return <Badge tone={state === 'healthy' ? 'green' : state === 'failing' ? 'red' : 'slate'}>{state === 'healthy' ? 'Healthy' : state === 'failing' ? 'Failing' : 'Disabled'}</Badge>;
}

/** Any text from a third party, shown verbatim in a scrollable monospace block. */
export function CodeBlock({ children, label, className }: { children: string; label?: string; className?: string }) {
  return (
    <pre aria-label={label} tabIndex={0} className={cx('max-h-96 overflow-auto rounded-md border border-slate-200 bg-slate-950 p-3 text-xs leading-relaxed whitespace-pre-wrap break-all text-slate-100', className)}>
      {children}
    </pre>
  );
}

/** Pretty JSON when the text is JSON, the text itself otherwise. */
export function prettyText(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const message = error instanceof Error ? error.message : String(error);
  return (
    <div role="alert" className="rounded-md border border-red-200 bg-red-50 px-3 py-2 text-sm text-red-800">
      {message}
    </div>
  );
}

export function Notice({ children }: { children: ReactNode }) {
  return <div role="status" className="rounded-md border border-emerald-200 bg-emerald-50 px-3 py-2 text-sm text-emerald-800">{children}</div>;
}

export function Loading({ what = 'Loading' }: { what?: string }) {
  return <p role="status" className="text-sm text-slate-500">{what}…</p>;
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="text-sm text-slate-500">{children}</p>;
}

/** A table that scrolls sideways on narrow screens instead of squeezing its columns. */
export function Table({ caption, head, children }: { caption: string; head: ReactNode[]; children: ReactNode }) {
  return (
    <div className="-mx-4 overflow-x-auto px-4">
      <table className="w-full min-w-[36rem] border-collapse text-left text-sm">
        <caption className="sr-only">{caption}</caption>
        <thead>
          <tr className="border-b border-slate-200 text-xs uppercase tracking-wide text-slate-500">
            {head.map((h, i) => <th key={i} scope="col" className="px-2 py-2 font-medium">{h}</th>)}
          </tr>
        </thead>
        <tbody className="divide-y divide-slate-100">{children}</tbody>
      </table>
    </div>
  );
}
export const Td = ({ children, className }: { children?: ReactNode; className?: string }) => <td className={cx('px-2 py-2 align-top', className)}>{children}</td>;

export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  return (
    <Button
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text);
          setDone(true);
          window.setTimeout(() => setDone(false), 1500);
        } catch {
          /* clipboard refused (e.g. insecure context); the text is selectable */
        }
      }}
    >
      <span aria-live="polite">{done ? 'Copied' : label}</span>
    </Button>
  );
}

export const formatTime = (iso: string | null | undefined) => (iso ? new Date(iso).toLocaleString() : '—');
export const formatPercent = (v: number | null) => (v === null ? '—' : `${(v * 100).toFixed(v === 1 || v === 0 ? 0 : 1)} %`);
export const formatMs = (v: number | null) => (v === null ? '—' : v < 1000 ? `${v} ms` : `${(v / 1000).toFixed(1)} s`);

/** `<input type="datetime-local">` value ⇄ ISO. */
export const toLocalInput = (d: Date) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
export const fromLocalInput = (v: string) => (v ? new Date(v).toISOString() : undefined);
