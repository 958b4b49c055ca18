//! One SystemExtensions request and its delegate (macOS only).
//!
//! The delegate runs on a dispatch queue of its own and forwards every callback over a channel;
//! the main thread waits on that channel, so no run loop is needed. The request holds its
//! delegate weakly: `run` keeps it alive until the request is concluded.

use crossbeam_channel::{bounded, Sender};
use dispatch2::DispatchQueue;
use objc2::rc::Retained;
use objc2::runtime::{NSObject, NSObjectProtocol, ProtocolObject};
use objc2::{define_class, msg_send, AllocAnyThread, DefinedClass};
use objc2_foundation::{NSArray, NSError, NSString};
use objc2_system_extensions::{
    OSSystemExtensionManager, OSSystemExtensionProperties, OSSystemExtensionReplacementAction,
    OSSystemExtensionRequest, OSSystemExtensionRequestDelegate, OSSystemExtensionRequestResult,
};

use crate::outcome::{
    conclude, Callback, Command, ExtensionStatus, Options, APPROVAL_HINT, EXIT_FAILED,
    EXIT_NEEDS_APPROVAL,
};

/// The delegate's state: where callbacks go.
struct Ivars {
    tx: Sender<Callback>,
}

define_class!(
    #[unsafe(super(NSObject))]
    #[name = "ExecSentryExtensionRequestDelegate"]
    #[ivars = Ivars]
    struct Delegate;

    unsafe impl NSObjectProtocol for Delegate {}

    unsafe impl OSSystemExtensionRequestDelegate for Delegate {
        #[unsafe(method(request:actionForReplacingExtension:withExtension:))]
        fn replacing(
            &self,
            _request: &OSSystemExtensionRequest,
            existing: &OSSystemExtensionProperties,
            new: &OSSystemExtensionProperties,
        ) -> OSSystemExtensionReplacementAction {
            // SAFETY: plain property getters on objects macOS handed us.
            let (existing, new) = unsafe {
                (
                    existing.bundleShortVersion().to_string(),
                    new.bundleShortVersion().to_string(),
                )
            };
            self.send(Callback::Replacing { existing, new });
            OSSystemExtensionReplacementAction::Replace
        }

        #[unsafe(method(requestNeedsUserApproval:))]
        fn needs_approval(&self, _request: &OSSystemExtensionRequest) {
            self.send(Callback::NeedsApproval);
        }

        #[unsafe(method(request:didFinishWithResult:))]
        fn finished(
            &self,
            _request: &OSSystemExtensionRequest,
            result: OSSystemExtensionRequestResult,
        ) {
            self.send(Callback::Finished(result.0));
        }

        #[unsafe(method(request:didFailWithError:))]
        fn failed(&self, _request: &OSSystemExtensionRequest, error: &NSError) {
            self.send(Callback::Failed {
                code: error.code(),
                domain: error.domain().to_string(),
                description: error.localizedDescription().to_string(),
            });
        }

        #[unsafe(method(request:foundProperties:))]
        fn found(
            &self,
            _request: &OSSystemExtensionRequest,
            properties: &NSArray<OSSystemExtensionProperties>,
        ) {
            let list = properties
                .iter()
                // SAFETY: plain property getters on objects macOS handed us.
                .map(|p| unsafe {
                    ExtensionStatus {
                        bundle_id: p.bundleIdentifier().to_string(),
                        short_version: p.bundleShortVersion().to_string(),
                        version: p.bundleVersion().to_string(),
                        enabled: p.isEnabled(),
                        awaiting_approval: p.isAwaitingUserApproval(),
                        uninstalling: p.isUninstalling(),
                        path: p.URL().path().map(|s| s.to_string()).unwrap_or_default(),
                    }
                })
                .collect();
            self.send(Callback::Found(list));
        }
    }
);

impl Delegate {
    fn new(tx: Sender<Callback>) -> Retained<Self> {
        let this = Self::alloc().set_ivars(Ivars { tx });
        // SAFETY: NSObject's designated initializer, on a freshly allocated instance.
        unsafe { msg_send![super(this), init] }
    }

    fn send(&self, cb: Callback) {
        // The receiver only goes away once the request is concluded; late callbacks are moot.
        let _ = self.ivars().tx.try_send(cb);
    }
}

/// Submits the request for `options` and waits for its conclusion; returns the exit status.
pub fn run(options: &Options) -> i32 {
    let (tx, rx) = bounded(16);
    let delegate = Delegate::new(tx);
    let queue = DispatchQueue::new("org.execsentry.host.requests", None);
    let id = NSString::from_str(&options.extension_id);
    // SAFETY: the identifier and queue are valid for the call; the queue is serial and only
    // runs our delegate's methods, which are thread-safe (they only send on a channel).
    let request = unsafe {
        match options.command {
            Command::Activate => {
                OSSystemExtensionRequest::activationRequestForExtension_queue(&id, &queue)
            }
            Command::Deactivate => {
                OSSystemExtensionRequest::deactivationRequestForExtension_queue(&id, &queue)
            }
            Command::Status => {
                OSSystemExtensionRequest::propertiesRequestForExtension_queue(&id, &queue)
            }
        }
    };
    // SAFETY: the delegate outlives the request's use of it: both live until `run` returns.
    unsafe {
        request.setDelegate(Some(ProtocolObject::from_ref(&*delegate)));
        OSSystemExtensionManager::sharedManager().submitRequest(&request);
    }

    let deadline = std::time::Instant::now() + options.timeout;
    let mut needs_approval = false;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(cb) = rx.recv_timeout(left) else {
            if needs_approval {
                eprintln!("execsentry-host: still waiting for approval; {APPROVAL_HINT}");
                return EXIT_NEEDS_APPROVAL;
            }
            eprintln!(
                "execsentry-host: no answer from the SystemExtensions framework within {:?}",
                options.timeout
            );
            return EXIT_FAILED;
        };
        if cb == Callback::NeedsApproval && !needs_approval {
            needs_approval = true;
            eprintln!("execsentry-host: {APPROVAL_HINT}");
        }
        if let Some((message, code)) = conclude(options.command, &cb) {
            if code == 0 {
                println!("{message}");
            } else {
                eprintln!("execsentry-host: {message}");
            }
            return code;
        }
    }
}
