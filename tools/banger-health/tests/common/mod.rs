pub mod fakevsock;
