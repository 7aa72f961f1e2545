// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title AnchorRegistry
/// @notice The consultation chain's record of vitalgate gateways' block
/// logs. A gateway anchors its log's signed tree heads here, so any party
/// can check that its records existed at a time and that its history was
/// only ever appended to (RFC 9162 consistency between two anchors).
///
/// A gateway is named by its Ed25519 identity public key (32 bytes), so an
/// anchor's `treeHead` (the COSE_Sign1 signed tree head, docs/FORMAT.md)
/// can be checked against the key that names it without trusting this
/// contract. Only the account the administrator (the hospital) registered
/// for a gateway may anchor for it; tree sizes only grow.
///
/// The contract cannot check an Ed25519 signature or a Merkle proof (no
/// precompile for either on a London-era chain): it records, orders and
/// attributes; verifiers check off chain (`vitalgate verify --anchors`).
contract AnchorRegistry {
    /// The latest anchor of a gateway (two storage slots).
    struct Head {
        uint64 size;
        uint64 time;
        bytes32 root;
    }

    /// Who may register and revoke gateways.
    address public administrator;
    /// The account allowed to anchor for each gateway (zero: none).
    mapping(bytes32 gateway => address account) public anchorer;
    /// Each gateway's latest anchored tree head.
    mapping(bytes32 gateway => Head head) public latest;

    event AdministrationTransferred(address indexed from, address indexed to);
    event GatewayRegistered(bytes32 indexed gateway, address indexed account);
    event GatewayRevoked(bytes32 indexed gateway, address indexed account);
    /// One per anchor: the tree head's size, root and time (ms since the
    /// Unix epoch, the gateway's clock) and the signed tree head itself.
    event Anchored(bytes32 indexed gateway, uint64 indexed size, bytes32 root, uint64 time, bytes treeHead);

    error NotAdministrator(address sender);
    error NotRegistered(bytes32 gateway, address sender);
    error NotAppended(bytes32 gateway, uint64 latestSize, uint64 size);
    error ZeroAccount();

    constructor() {
        administrator = msg.sender;
        emit AdministrationTransferred(address(0), msg.sender);
    }

    modifier onlyAdministrator() {
        if (msg.sender != administrator) revert NotAdministrator(msg.sender);
        _;
    }

    /// Hand the registry to another administrator account.
    function transferAdministration(address to) external onlyAdministrator {
        if (to == address(0)) revert ZeroAccount();
        emit AdministrationTransferred(administrator, to);
        administrator = to;
    }

    /// Allow `account` to anchor for `gateway` (replacing any earlier
    /// account: a re-provisioned gateway keeps its history).
    function register(bytes32 gateway, address account) external onlyAdministrator {
        if (account == address(0)) revert ZeroAccount();
        anchorer[gateway] = account;
        emit GatewayRegistered(gateway, account);
    }

    /// Stop `gateway` from anchoring; its anchors stay on record.
    function revoke(bytes32 gateway) external onlyAdministrator {
        address account = anchorer[gateway];
        delete anchorer[gateway];
        emit GatewayRevoked(gateway, account);
    }

    /// Record a signed tree head of `gateway`'s log. `size` must exceed
    /// the latest anchored size: a log is only appended to, and a newer
    /// head commits to everything an older one did.
    function anchor(bytes32 gateway, uint64 size, bytes32 root, uint64 time, bytes calldata treeHead) external {
        address account = anchorer[gateway];
        if (account == address(0) || msg.sender != account) revert NotRegistered(gateway, msg.sender);
        uint64 latestSize = latest[gateway].size;
        if (size <= latestSize) revert NotAppended(gateway, latestSize, size);
        latest[gateway] = Head(size, time, root);
        emit Anchored(gateway, size, root, time, treeHead);
    }
}
